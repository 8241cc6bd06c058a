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
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, exc, insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from models.base import per_transaction, utcnow
from models.direct import NEW_COLUMNS, REPLY_COLUMNS, Compiled, adopt_inbound, reply_rows
from models.messages import InboundMessage, OutboundMessage
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


_OUTBOUND = cast(Table, OutboundMessage.__table__)
_INSERT_REPLIES = Compiled(
    insert(_OUTBOUND)
    .values({name: bindparam(name) for name in (*REPLY_COLUMNS, "attempts")})
    .returning(_OUTBOUND.c.id, _OUTBOUND.c.inbound_id, _OUTBOUND.c.body),
    [*REPLY_COLUMNS, "attempts"],
    DIALECT,
)
_INBOUND = cast(Table, InboundMessage.__table__)
_STORE_INBOUND = Compiled(
    sqlite_insert(_INBOUND)
    .values({name: bindparam(name) for name in (*NEW_COLUMNS, "received_at", "attempts")})
    .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    .returning(_INBOUND.c.id, _INBOUND.c.channel, _INBOUND.c.provider_id),
    [*NEW_COLUMNS, "received_at", "attempts"],
    DIALECT,
)


async def insert_replies(
    session: AsyncSession, values: Sequence[Mapping[str, Any]]
) -> list[tuple[int, int, str]] | None:
    """`models.pg_direct.insert_replies` on SQLite: multi-row INSERTs of the reply rows;
    (id, inbound id, body) of each. None: not here."""
    if any(not set(REPLY_COLUMNS).issuperset(value) for value in values):
        return None  # a column this statement does not know: SQLAlchemy's way
    rows = await insert_rows(session, _INSERT_REPLIES, reply_rows(values, utcnow()))
    return None if rows is None else [(r[0], r[1], r[2]) for r in rows]


async def store_inbound(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], now: datetime
) -> dict[tuple[str, str], InboundMessage] | None:
    """`models.pg_direct.store_inbound` on SQLite, the group's first write: the writers'
    lock, then multi-row INSERTs skipping a (channel, provider id) already stored; the
    rows inserted as the session's own objects. None: not here."""
    values = [{**r, "received_at": now, "attempts": 1} for r in rows]
    got = await insert_rows(session, _STORE_INBOUND, values, first_write=True)
    return None if got is None else adopt_inbound(session, got, rows, now)
