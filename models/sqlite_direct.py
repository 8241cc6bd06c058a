"""A group's set-based statements on SQLite, run in aiosqlite's thread without
SQLAlchemy's execution path: the counterpart of `models.pg_direct`.

Through the session each statement costs the loop the session's execute, the compiled
cache lookup, the adapter's cursor and the result objects, for statements whose rows
need none of them (docs/BENCHMARKS.md, "Eighth step"). So, as on PostgreSQL, a group's
inbound rows, reply rows, "handled" marks, abuse-limit columns and its keyword read are
compiled once, at import, for the gateway's SQLite dialect (`models.sqlite_driver`), and
handed to the thread that owns the session's `sqlite3` connection: the same connection
and thread, so the same transaction (SQLite's own, which `sqlite3` opens before the
first write, as it does for SQLAlchemy's statements), in the order they are awaited.
A failure is raised as SQLAlchemy would raise it (`sqlalchemy.exc.IntegrityError` and
the like), so callers see one kind of error whichever way a statement went.

Writers of several processes (`citygate serve --workers 2` on one SQLite file) queue on
a lock file beside the database (`<file>-writers.lock`, `fcntl.flock`) before a group's
first write, and let go when the transaction ends: a process that waits sleeps in the
kernel and wakes the moment the other commits. Without it they met in SQLite's busy
handler, which polls with sleeps of 1, 2, 5 … 100 ms, and a process that had just
committed took the write lock again before the sleeper woke (p99 0.5–1.2 s at half
load, docs/BENCHMARKS.md, "Eighth step"). The lock is taken only by a transaction that
has not written yet, so it never waits while holding SQLite's own write lock.

Only with the gateway's one-hop driver (`sqlite+aiosqlite` URLs, `models.db.make_engine`)
and inside a transaction; `driver` returns None otherwise and the callers take
SQLAlchemy's way.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import event, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from models.base import per_transaction
from models.sqlite_driver import OneHopDialect, _run

DIALECT = OneHopDialect()
_DRIVER = per_transaction("citygate.sqlite_connection")
# Rows of one multi-row INSERT at most: SQLite allows 32,766 bound values a statement,
# a reply row has fourteen.
MOST_ROWS = 500


_HELD = "citygate.sqlite_writers_lock"  # session.info: the lock file's fd, until the end


def _lock_file(connection: Any, database: str | None) -> int | None:
    """The lock file's descriptor for this connection (its own open file, so that two
    connections of one process exclude each other too); None for a database in memory."""
    fd: int | None = getattr(connection, "_citygate_writers_lock", None)
    if fd is None and database and database != ":memory:" and not database.startswith("file:"):
        fd = os.open(f"{database}-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
        connection._citygate_writers_lock = fd
        weakref.finalize(connection, os.close, fd)
    return fd


def _first_write(conn: sqlite3.Connection, fd: int, sql: str, args: Any, many: bool) -> Any:
    """In the connection's thread: the writers' lock, if no write of this transaction
    came before, then the statement."""
    if not conn.in_transaction:
        fcntl.flock(fd, fcntl.LOCK_EX)
    return _run(conn, sql, args, many)


@event.listens_for(Session, "after_transaction_end")
def _let_go(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        fd = session.info.pop(_HELD, None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)  # the commit or rollback is done


async def driver(session: AsyncSession) -> Any | None:
    """The aiosqlite connection under `session`, or None: not the gateway's SQLite
    driver, or no transaction."""
    found: Any = session.info.get(_DRIVER)
    if found is not None:
        return found
    dialect = session.get_bind().dialect
    if not isinstance(dialect, OneHopDialect) or not session.in_transaction():
        return None
    connection = await session.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    found = getattr(adapted, "_connection", None)
    if found is None or not hasattr(found, "_execute"):
        return None
    session.info[_DRIVER] = found
    return found


async def send(
    connection: Any, sql: str, arguments: Sequence[Any], many: bool = False, lock: int | None = None
) -> list[Any]:
    """The one place a direct statement reaches SQLite (`tests.support.statements`
    watches it here): run in the connection's thread in one hand-off, its rows read
    whole; with `many`, `arguments` holds a row of arguments for each run; with `lock`,
    the writers' lock file is taken first if this is the transaction's first write."""
    try:
        if lock is None:
            ran = await connection._execute(_run, connection._conn, sql, arguments, many)
        else:
            ran = await connection._execute(
                _first_write, connection._conn, lock, sql, arguments, many
            )
        _description, rows, _count, _last = ran
    except sqlite3.Error as error:
        raise exc.DBAPIError.instance(
            sql, arguments, error, sqlite3.Error, dialect=DIALECT
        ) from error
    return cast(list[Any], rows)


class Compiled:
    """A statement compiled once for a dialect (SQLite's unless told; `models.pg_direct`
    gives asyncpg's): its SQL, its parameters' order and each parameter's bind
    processing, what SQLAlchemy does to a value for that dialect (`UTCDateTime` makes a
    time naive UTC on SQLite, JSON is serialised, an ARRAY applies its item's). Its
    bound parameters must be exactly `parameters`: a column default SQLAlchemy would
    fill in at execution is refused here, at import, instead of left NULL."""

    def __init__(
        self, statement: ClauseElement, parameters: Sequence[str], dialect: Dialect = DIALECT
    ) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        if set(self.names) != set(parameters):
            raise ValueError(f"bound parameters {self.names}, expected {tuple(parameters)}")
        self._binds = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in self.names
        )
        self._many: dict[int, str] = {}

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        return [
            parameters[name] if bind is None else bind(parameters[name])
            for name, bind in self._binds
        ]

    def rows_sql(self, count: int) -> str:
        """An INSERT of one row of VALUES made an INSERT of `count` rows."""
        sql = self._many.get(count)
        if sql is None:
            one = "(" + ", ".join("?" * len(self.names)) + ")"
            if self.sql.count(one) != 1:
                raise ValueError(f"not a one-row INSERT: {self.sql}")
            sql = self.sql.replace(one, ", ".join([one] * count))
            if len(self._many) < 64:
                self._many[count] = sql
        return sql


async def fetch(
    session: AsyncSession, statement: Compiled, parameters: Mapping[str, Any]
) -> list[Any] | None:
    """The statement's rows (tuples), or None when not here."""
    connection = await driver(session)
    if connection is None:
        return None
    return await send(connection, statement.sql, statement.arguments(parameters))


async def run_many(
    session: AsyncSession, statement: Compiled, rows: Sequence[Mapping[str, Any]]
) -> bool:
    """The statement once for each of `rows`, in one hand-off; False when not here."""
    connection = await driver(session)
    if connection is None:
        return False
    await send(connection, statement.sql, [statement.arguments(r) for r in rows], many=True)
    return True


async def insert_rows(
    session: AsyncSession,
    statement: Compiled,
    rows: Sequence[Mapping[str, Any]],
    *,
    first_write: bool = False,
) -> list[Any] | None:
    """A one-row INSERT … RETURNING run for all of `rows` as multi-row INSERTs (one
    hand-off for up to `MOST_ROWS`); the rows returned, or None when not here. With
    `first_write` (a group's first statement) the writers' lock is taken first, unless
    the transaction wrote already."""
    connection = await driver(session)
    if connection is None:
        return None
    lock = None
    if first_write and _HELD not in session.info:
        lock = _lock_file(connection, session.get_bind().engine.url.database)
        if lock is not None:
            session.info[_HELD] = lock  # let go at the transaction's end, whatever happens
    got: list[Any] = []
    for start in range(0, len(rows), MOST_ROWS):
        chunk = rows[start : start + MOST_ROWS]
        arguments = [a for row in chunk for a in statement.arguments(row)]
        got += await send(connection, statement.rows_sql(len(chunk)), arguments, lock=lock)
        lock = None
    return got
