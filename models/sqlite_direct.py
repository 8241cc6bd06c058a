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

Only with the gateway's one-hop driver (`sqlite+aiosqlite` URLs, `models.db.make_engine`)
and inside a transaction; `driver` returns None otherwise and the callers take
SQLAlchemy's way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from models.base import per_transaction
from models.sqlite_driver import OneHopDialect, _run

DIALECT = OneHopDialect()
_DRIVER = per_transaction("citygate.sqlite_connection")
# Rows of one multi-row INSERT at most: SQLite allows 32,766 bound values a statement,
# a reply row has fourteen.
MOST_ROWS = 500


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
    connection: Any, sql: str, arguments: Sequence[Any], many: bool = False
) -> list[Any]:
    """The one place a direct statement reaches SQLite (`tests.support.statements`
    watches it here): run in the connection's thread in one hand-off, its rows read
    whole; with `many`, `arguments` holds a row of arguments for each run."""
    try:
        _description, rows, _count, _last = await connection._execute(
            _run, connection._conn, sql, arguments, many
        )
    except sqlite3.Error as error:
        raise exc.DBAPIError.instance(
            sql, arguments, error, sqlite3.Error, dialect=DIALECT
        ) from error
    return cast(list[Any], rows)


class Compiled:
    """A statement compiled once for SQLite: its SQL, its parameters' order and each
    parameter's bind processing (what SQLAlchemy does to a value for this dialect)."""

    def __init__(self, statement: ClauseElement, parameters: Sequence[str]) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=DIALECT))
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        if set(self.names) != set(parameters):
            raise ValueError(f"bound parameters {self.names}, expected {tuple(parameters)}")
        self._binds = tuple(
            (name, compiled.binds[name].type.dialect_impl(DIALECT).bind_processor(DIALECT))
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
    session: AsyncSession, statement: Compiled, rows: Sequence[Mapping[str, Any]]
) -> list[Any] | None:
    """A one-row INSERT … RETURNING run for all of `rows` as multi-row INSERTs (one
    hand-off for up to `MOST_ROWS`); the rows returned, or None when not here."""
    connection = await driver(session)
    if connection is None:
        return None
    got: list[Any] = []
    for start in range(0, len(rows), MOST_ROWS):
        chunk = rows[start : start + MOST_ROWS]
        arguments = [a for row in chunk for a in statement.arguments(row)]
        got += await send(connection, statement.rows_sql(len(chunk)), arguments)
    return got
