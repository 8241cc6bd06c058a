"""SQLite through aiosqlite's thread, one hand-off a statement.

SQLAlchemy's `sqlite+aiosqlite` adapter hands every step of a statement to aiosqlite's
thread separately: open a cursor, execute, fetch the rows, close the cursor, and the
async session closes it once more; five round trips through a queue and the event
loop's wake-up pipe for each statement, each a few tens of microseconds of CPU on both
threads (docs/BENCHMARKS.md, "SQLite: one hand-off a statement"). The gateway's group
commit makes about eight statements a group, so those hand-offs were a large part of
what a group costs.

This adapter keeps everything else of SQLAlchemy's aiosqlite dialect (the connection,
commit and rollback, the pool, the errors, `terminate`) and replaces the cursor: one
function runs in aiosqlite's thread, opens a `sqlite3` cursor, executes, fetches every
row and closes the cursor, and the results come back in one hand-off. Nothing is
different for SQLite itself: the same statements on the same connection in the same
thread, in the same order (aiosqlite's queue keeps it).

`make_engine` uses it for every `sqlite+aiosqlite` URL (the settings keep that name);
no server-side cursors (the gateway streams no result).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util.concurrency import await_

DRIVER = "sqlite+citygate_aiosqlite"

_Description = tuple[tuple[Any, ...], ...] | None
_Ran = tuple[_Description, list[Any], int, int | None]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Ran:
    """In aiosqlite's thread: the whole statement, its rows read and its cursor closed."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor:
    """The DB-API cursor SQLAlchemy sees: results are read in full at `execute`."""

    server_side = False
    __slots__ = ("_adapt", "_rows", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, adapt_connection: OneHopConnection) -> None:
        self._adapt = adapt_connection
        self._rows: deque[Any] = deque()
        self.description: _Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    def _hand_off(self, operation: str, parameters: Any, many: bool) -> None:
        aio = self._adapt._connection
        try:
            ran: _Ran = await_(aio._execute(_run, aio._conn, operation, parameters, many))
        except Exception as error:
            self._adapt._handle_exception(error)
        self.description, rows, self.rowcount, self.lastrowid = ran
        self._rows = deque(rows)

    def execute(self, operation: str, parameters: Any = None) -> None:
        self._hand_off(operation, parameters, False)

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> None:
        self._hand_off(operation, seq_of_parameters, True)

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        """The async session's close after each statement: the `sqlite3` cursor is
        closed already, in the thread."""

    def setinputsizes(self, *inputsizes: Any) -> None:
        """Not used by SQLite."""

    def nextset(self) -> None:
        """SQLite has one result set."""


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    def rollback(self) -> None:
        """A rollback with no transaction open is skipped here instead of in the thread.
        The pool rolls back every connection it takes back, and after a group's commit
        nothing is open: `sqlite3` itself would do nothing (it rolls back only when
        SQLite is not in autocommit), but the hand-off to do that nothing costs a queue
        put, a thread wake-up and a wake-up of the loop. `in_transaction` reads SQLite's
        autocommit flag, which any thread may read; no statement of this connection is
        running meanwhile (each is awaited)."""
        conn = self._connection._connection
        if conn is not None and not conn.in_transaction:
            return
        super().rollback()

    def cursor(self, server_side: bool = False) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


class OneHopDialect(SQLiteDialect_aiosqlite):
    driver = "citygate_aiosqlite"
    supports_statement_cache = True
    supports_server_side_cursors = False

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        return OneHopDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register("sqlite.citygate_aiosqlite", __name__, "OneHopDialect")
