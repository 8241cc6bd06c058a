"""A group's set-based statements on PostgreSQL, sent straight to asyncpg.

A message group (`gateway.group_commit`) begins by storing its messages, ends with three
writes, its reply rows, its "handled" marks and its senders' abuse-limit columns, and
reads the keyword table once.
Through SQLAlchemy's session each of those statements cost about 170 µs of the event
loop's CPU, against 45 µs for asyncpg itself (docs/BENCHMARKS.md, "Seventh step"): the
session's execute, the compiled-cache lookup, the adapter's cursor and the result
objects, for statements whose rows need none of them.

So on PostgreSQL these few statements are still written in SQLAlchemy's expression
language, but compiled once, at import, for the asyncpg dialect, and run on the
session's own asyncpg connection, inside the session's transaction (`driver`). The
INSERTs take their rows as arrays and `unnest` them: one statement and one prepared
plan whatever the group's size, where a multi-row VALUES is a new statement for each
number of rows. The UPDATEs go by primary key, once a row, in one round trip (asyncpg's
executemany): `models.inbox` wraps its own statements in `Direct`, which binds each
value as SQLAlchemy would (its types' bind processing). The rows a group stores are
made the session's own objects the way a query's loading makes them (`models.direct`,
shared with SQLite). On SQLite the same statements, compiled for SQLite (multi-row
VALUES instead of arrays), go to the `sqlite3` connection's thread in one hand-off each
(`models.sqlite_direct`); a `Direct` carries both compilations. Everything else goes
through SQLAlchemy as before: a caller falls back to it whenever both return None or
False (another driver, no transaction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Select, Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.selectable import TableValuedAlias

from models import sqlite_direct
from models.base import per_transaction, unbounded, utcnow
from models.direct import NEW_COLUMNS, REPLY_COLUMNS, Compiled, adopt_inbound, reply_rows
from models.messages import InboundMessage, OutboundMessage

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
_DRIVER = per_transaction("citygate.asyncpg_connection")


async def driver(session: AsyncSession) -> Any | None:
    """The asyncpg connection under `session`, inside the session's transaction; None
    when there is none (not asyncpg, no transaction, autocommit).

    SQLAlchemy's asyncpg adapter sends BEGIN only with its first statement; when a
    direct statement comes first, the adapter is asked to begin (`_start_transaction`,
    what its cursor calls), so its commit and rollback are the transaction's as always.
    Those are the adapter's private names: were they to go in a new SQLAlchemy, this
    returns None and the callers take SQLAlchemy's way (tests/models/test_pg_direct.py
    then fails, as it counts the statements that went straight to asyncpg)."""
    adapted: Any = session.info.get(_DRIVER)
    if adapted is None:
        dialect = session.get_bind().dialect
        if dialect.name != "postgresql" or dialect.driver != "asyncpg":
            return None
        if not session.in_transaction():
            return None
        connection = await session.connection()
        adapted = (await connection.get_raw_connection()).dbapi_connection
        if not all(hasattr(adapted, name) for name in _ADAPTER):
            return None
        session.info[_DRIVER] = adapted
    if adapted._transaction is None:
        await adapted._start_transaction()
    found = adapted._connection
    return found if found.is_in_transaction() else None


_ADAPTER = ("_transaction", "_start_transaction", "_connection")


async def send(
    connection: Any, sql: str, arguments: Sequence[Any], many: bool = False
) -> list[Any]:
    """The one place a direct statement reaches asyncpg (`tests.support.statements`
    watches it here); with `many`, `arguments` holds a row of arguments for each run
    (asyncpg's executemany: every run in one round trip)."""
    if many:
        await connection.executemany(sql, arguments)
        return []
    rows: list[Any] = await connection.fetch(sql, *arguments)
    return rows


class Direct(Compiled):
    """A statement of the expression language compiled once for asyncpg and, unless
    `sqlite` is False, for SQLite (`lite`); see `models.direct.Compiled`."""

    def __init__(
        self, statement: ClauseElement, parameters: Sequence[str] = (), *, sqlite: bool = True
    ) -> None:
        super().__init__(statement, parameters, _DIALECT)
        self.lite = Compiled(statement, parameters, sqlite_direct.DIALECT) if sqlite else None

    async def fetch(self, session: AsyncSession, parameters: Mapping[str, Any]) -> list[Any] | None:
        """The statement's rows (asyncpg records, or tuples on SQLite), or None when
        `session` is on neither driver in a transaction (the caller runs its SQLAlchemy
        statement)."""
        connection = await driver(session)
        if connection is None:
            if self.lite is None:
                return None
            return await sqlite_direct.fetch(session, self.lite, parameters)
        return await send(connection, self.sql, self.arguments(parameters))

    async def run_many(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Run the statement once for each of `rows`, in one round trip (for an UPDATE by
        primary key: a prepared join with `unnest` keeps the plan it got while the
        table was small, docs/BENCHMARKS.md, "Seventh step"); False when `session` is
        on neither driver in a transaction."""
        connection = await driver(session)
        if connection is None:
            return self.lite is not None and await sqlite_direct.run_many(session, self.lite, rows)
        arguments = [self.arguments(row) for row in rows]
        await send(connection, self.sql, arguments, many=True)
        return True


def unnest(table: Table, names: Sequence[str]) -> TableValuedAlias:
    """`unnest($1::T1[], $2::T2[], …) AS v(name1, name2, …)`: a row for each index of
    the arrays, each array bound by the name of `table`'s column it fills, and of its
    type."""
    arrays = [bindparam(name, type_=ARRAY(unbounded(table.c[name].type))) for name in names]
    return func.unnest(*arrays).table_valued(*names).render_derived(name="v")


def rows_of(table: Table, names: Sequence[str]) -> tuple[list[str], Select[Any]]:
    """The columns and the SELECT of an `INSERT … SELECT` putting into `table` a row for
    each index of the `names` arrays, `attempts` bound once for all: one statement and
    one prepared plan whatever the number of rows (a multi-row VALUES is a new
    statement for each number)."""
    rows = unnest(table, names)
    values = select(*(rows.c[name] for name in names), bindparam("attempts", type_=Integer()))
    return [*names, "attempts"], values


_OUTBOUND = cast(Table, OutboundMessage.__table__)
_INSERT_REPLIES = Direct(
    _OUTBOUND.insert()
    .from_select(*rows_of(_OUTBOUND, REPLY_COLUMNS))
    .returning(_OUTBOUND.c.id, _OUTBOUND.c.inbound_id, _OUTBOUND.c.body),
    [*REPLY_COLUMNS, "attempts"],
    sqlite=False,
)


async def insert_replies(
    session: AsyncSession, values: Sequence[Mapping[str, Any]]
) -> list[tuple[int, int, str]] | None:
    """Insert reply rows (`models.inbox` values) in one statement; (id, inbound id,
    body) of each new row, in no promised order. None: not here (SQLAlchemy's way)."""
    if any(not set(REPLY_COLUMNS).issuperset(value) for value in values):
        return None  # a column this statement does not know: SQLAlchemy's way
    made = reply_rows(values, utcnow())  # the same rows as on SQLite, as arrays here
    arrays: dict[str, Any] = {name: [r[name] for r in made] for name in REPLY_COLUMNS}
    rows = await _INSERT_REPLIES.fetch(session, {**arrays, "attempts": 0})
    return None if rows is None else [(r[0], r[1], r[2]) for r in rows]


_INBOUND = cast(Table, InboundMessage.__table__)
_STORE_INBOUND = Direct(
    pg_insert(_INBOUND)
    .from_select(*rows_of(_INBOUND, [*NEW_COLUMNS, "received_at"]))
    .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    .returning(_INBOUND.c.id, _INBOUND.c.channel, _INBOUND.c.provider_id),
    [*NEW_COLUMNS, "received_at", "attempts"],
    sqlite=False,
)


async def store_inbound(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], now: datetime
) -> dict[tuple[str, str], InboundMessage] | None:
    """Insert new inbound rows (`NEW_COLUMNS`, stored with one attempt at `now`) in one
    statement, skipping a (channel, provider id) already stored; the rows inserted, as
    the session's own persistent objects, by (channel, provider id). None: not here."""
    connection = await driver(session)
    if connection is None:
        return None
    arrays: dict[str, Any] = {name: [r[name] for r in rows] for name in NEW_COLUMNS}
    arrays["received_at"] = [now] * len(rows)
    got = await send(
        connection, _STORE_INBOUND.sql, _STORE_INBOUND.arguments({**arrays, "attempts": 1})
    )
    return adopt_inbound(session, got, rows, now)
