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
made the session's own objects the way a query's loading makes them. On SQLite the
same statements, compiled for SQLite (multi-row VALUES instead of arrays), go to the
`sqlite3` connection's thread in one hand-off each (`models.sqlite_direct`). Everything
else goes through SQLAlchemy as before: a caller falls back to it whenever a function
here returns None or False (another driver, no transaction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Select, String, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.base import manager_of_class
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.selectable import TableValuedAlias

from models import sqlite_direct
from models.base import per_transaction, utcnow
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


class Direct(sqlite_direct.Compiled):
    """A statement of the expression language compiled once for asyncpg and, unless
    `sqlite` is False, for SQLite (`lite`); see `sqlite_direct.Compiled`."""

    def __init__(
        self, statement: ClauseElement, parameters: Sequence[str] = (), *, sqlite: bool = True
    ) -> None:
        super().__init__(statement, parameters, _DIALECT)
        self.lite = sqlite_direct.Compiled(statement, parameters) if sqlite else None

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
    arrays = [bindparam(name, type_=ARRAY(_unbounded(table.c[name].type))) for name in names]
    return func.unnest(*arrays).table_valued(*names).render_derived(name="v")


def _unbounded(type_: Any) -> Any:
    """A column's type without its length: an explicit cast to VARCHAR(n) cuts a longer
    text silently, where the column itself refuses it (as through SQLAlchemy)."""
    return String() if isinstance(type_, String) and type_.length else type_


def rows_of(table: Table, names: Sequence[str]) -> tuple[list[str], Select[Any]]:
    """The columns and the SELECT of an `INSERT … SELECT` putting into `table` a row for
    each index of the `names` arrays, `attempts` bound once for all: one statement and
    one prepared plan whatever the number of rows (a multi-row VALUES is a new
    statement for each number)."""
    rows = unnest(table, names)
    values = select(*(rows.c[name] for name in names), bindparam("attempts", type_=Integer()))
    return [*names, "attempts"], values


_OUTBOUND = cast(Table, OutboundMessage.__table__)
# Every column a reply's values may name (an SMS reply's seven, an email reply's twelve);
# one missing from a row is NULL, but `created_at` and `updated_at`, which are now.
REPLY_COLUMNS = (
    "channel",
    "contact_id",
    "inbound_id",
    "to_address",
    "body",
    "kind",
    "status",
    "message_id",
    "case_id",
    "payload",
    "next_attempt_at",
    "created_at",
    "updated_at",
)
_INSERT_REPLIES = Direct(
    _OUTBOUND.insert()
    .from_select(*rows_of(_OUTBOUND, REPLY_COLUMNS))
    .returning(_OUTBOUND.c.id, _OUTBOUND.c.inbound_id, _OUTBOUND.c.body),
    [*REPLY_COLUMNS, "attempts"],
    sqlite=False,
)
_LITE_REPLIES = sqlite_direct.Compiled(
    insert(_OUTBOUND)
    .values({name: bindparam(name) for name in (*REPLY_COLUMNS, "attempts")})
    .returning(_OUTBOUND.c.id, _OUTBOUND.c.inbound_id, _OUTBOUND.c.body),
    [*REPLY_COLUMNS, "attempts"],
)


async def insert_replies(
    session: AsyncSession, values: Sequence[Mapping[str, Any]]
) -> list[tuple[int, int, str]] | None:
    """Insert reply rows (`models.inbox` values) in one statement; (id, inbound id,
    body) of each new row, in no promised order. None: not here (SQLAlchemy's way)."""
    if any(not set(REPLY_COLUMNS).issuperset(value) for value in values):
        return None  # a column this statement does not know: SQLAlchemy's way
    now = utcnow()
    rows: list[Any] | None
    if await driver(session) is None:
        lite = [
            {
                **dict.fromkeys(REPLY_COLUMNS),
                **v,
                "created_at": v.get("created_at") or now,
                "updated_at": now,
                "attempts": 0,
            }
            for v in values
        ]
        rows = await sqlite_direct.insert_rows(session, _LITE_REPLIES, lite)
    else:
        arrays: dict[str, Any] = {name: [v.get(name) for v in values] for name in REPLY_COLUMNS}
        arrays["created_at"] = [v.get("created_at") or now for v in values]
        arrays["updated_at"] = [now] * len(values)
        rows = await _INSERT_REPLIES.fetch(session, {**arrays, "attempts": 0})
    return None if rows is None else [(r[0], r[1], r[2]) for r in rows]


_INBOUND = cast(Table, InboundMessage.__table__)
_NEW_COLUMNS = ("channel", "provider_id", "from_address", "to_address", "body", "raw")
_STORE_INBOUND = Direct(
    pg_insert(_INBOUND)
    .from_select(*rows_of(_INBOUND, [*_NEW_COLUMNS, "received_at"]))
    .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    .returning(_INBOUND.c.id, _INBOUND.c.channel, _INBOUND.c.provider_id),
    [*_NEW_COLUMNS, "received_at", "attempts"],
    sqlite=False,
)
_LITE_STORE_INBOUND = sqlite_direct.Compiled(
    sqlite_insert(_INBOUND)
    .values({name: bindparam(name) for name in (*_NEW_COLUMNS, "received_at", "attempts")})
    .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    .returning(_INBOUND.c.id, _INBOUND.c.channel, _INBOUND.c.provider_id),
    [*_NEW_COLUMNS, "received_at", "attempts"],
)
# The columns a new row leaves at their default (None), set on the objects made here so
# that none is expired (an expired attribute would be loaded, and that cannot be awaited).
_MANAGER = manager_of_class(InboundMessage)
_UNSET = {
    c.key: None
    for c in _INBOUND.columns
    if c.key not in (*_NEW_COLUMNS, "id", "attempts", "received_at")
}


async def store_inbound(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]], now: datetime
) -> dict[tuple[str, str], InboundMessage] | None:
    """Insert new inbound rows (`_NEW_COLUMNS`, stored with one attempt at `now`) in one
    statement, skipping a (channel, provider id) already stored; the rows inserted, as
    the session's own persistent objects, by (channel, provider id). None: not here."""
    got: list[Any] | None
    if await driver(session) is None:
        lite = [{**r, "received_at": now, "attempts": 1} for r in rows]
        got = await sqlite_direct.insert_rows(session, _LITE_STORE_INBOUND, lite, first_write=True)
    else:
        arrays: dict[str, Any] = {name: [r[name] for r in rows] for name in _NEW_COLUMNS}
        arrays["received_at"] = [now] * len(rows)
        got = await _STORE_INBOUND.fetch(session, {**arrays, "attempts": 1})
    if got is None:
        return None
    given = {(r["channel"], r["provider_id"]): r for r in rows}
    made: dict[tuple[str, str], InboundMessage] = {}
    for id_, channel, provider_id in got:
        values = given[(channel, provider_id)]
        # As a query's loading makes an object (instrumented, its __init__ not run, the
        # values put in its __dict__): the constructor's attribute events cost more than
        # the whole statement (docs/BENCHMARKS.md, "Seventh step").
        row = _MANAGER.new_instance()
        row.__dict__.update(_UNSET, id=id_, attempts=1, received_at=now)
        row.__dict__.update((name, values[name]) for name in _NEW_COLUMNS)
        make_transient_to_detached(row)  # as if loaded: no pending change
        session.add(row)
        made[(channel, provider_id)] = row
    return made
