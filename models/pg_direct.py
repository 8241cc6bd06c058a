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
executemany). The rows a group stores are made the session's own objects the way a
query's loading makes them. Everything else, SQLite included, goes through SQLAlchemy
as before: a caller falls back to it whenever a function here returns None or False.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.base import manager_of_class
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

from models.base import per_transaction, utcnow
from models.contacts import Contact
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


class Direct:
    """A statement of the expression language compiled once for asyncpg. Its bound
    parameters must be exactly `parameters`: a column default SQLAlchemy would fill in
    at execution is refused here, at import, instead of left NULL."""

    def __init__(self, statement: ClauseElement, parameters: Sequence[str] = ()) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        if set(self.names) != set(parameters):
            raise ValueError(f"bound parameters {self.names}, expected {tuple(parameters)}")

    async def fetch(self, session: AsyncSession, parameters: Mapping[str, Any]) -> list[Any] | None:
        """The statement's rows (asyncpg records), or None when `session` is not on an
        asyncpg connection in a transaction (the caller runs its SQLAlchemy statement)."""
        connection = await driver(session)
        if connection is None:
            return None
        return await send(connection, self.sql, [parameters[name] for name in self.names])

    async def run_many(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Run the statement once for each of `rows`, in one round trip; False when
        `session` is not on an asyncpg connection in a transaction."""
        connection = await driver(session)
        if connection is None:
            return False
        arguments = [[row[name] for name in self.names] for row in rows]
        await send(connection, self.sql, arguments, many=True)
        return True


def unnest(columns: Mapping[str, TypeEngine[Any]]) -> TableValuedAlias:
    """`unnest($1::T1[], $2::T2[], …) AS v(name1, name2, …)`: a row for each index of
    the arrays, each array bound by its column's name."""
    arrays = [bindparam(name, type_=ARRAY(type_)) for name, type_ in columns.items()]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name="v")


def _aware(value: datetime | None) -> datetime | None:
    """As `models.base.UTCDateTime` binds it: a naive time is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


_STAMP = DateTime(timezone=True)
_OUTBOUND = cast(Table, OutboundMessage.__table__)
# Every column a reply's values may name (an SMS reply's seven, an email reply's twelve);
# one missing from a row is NULL, but `created_at`, which is now.
REPLY_COLUMNS: dict[str, TypeEngine[Any]] = {
    "channel": String(),
    "contact_id": Integer(),
    "inbound_id": Integer(),
    "to_address": String(),
    "body": Text(),
    "kind": String(),
    "status": String(),
    "message_id": String(),
    "case_id": Integer(),
    "payload": Text(),
    "next_attempt_at": _STAMP,
    "created_at": _STAMP,
}
_REPLY_ROWS = unnest(REPLY_COLUMNS)
_INSERT_REPLIES = Direct(
    _OUTBOUND.insert()
    .from_select(
        [*REPLY_COLUMNS, "attempts", "updated_at"],
        select(
            *(_REPLY_ROWS.c[name] for name in REPLY_COLUMNS),
            bindparam("attempts", type_=Integer()),
            bindparam("now", type_=_STAMP),
        ),
    )
    .returning(_OUTBOUND.c.id, _OUTBOUND.c.inbound_id, _OUTBOUND.c.body),
    [*REPLY_COLUMNS, "attempts", "now"],
)


async def insert_replies(
    session: AsyncSession, values: Sequence[Mapping[str, Any]]
) -> list[tuple[int, int, str]] | None:
    """Insert reply rows (`models.inbox` values) in one statement; (id, inbound id,
    body) of each new row, in no promised order. None: not here (SQLAlchemy's way)."""
    if any(not REPLY_COLUMNS.keys() >= value.keys() for value in values):
        return None  # a column this statement does not know: SQLAlchemy's way
    now = utcnow()
    arrays: dict[str, Any] = {name: [v.get(name) for v in values] for name in REPLY_COLUMNS}
    arrays["created_at"] = [_aware(v.get("created_at")) or now for v in values]
    arrays["next_attempt_at"] = [_aware(t) for t in arrays["next_attempt_at"]]
    rows = await _INSERT_REPLIES.fetch(session, {**arrays, "attempts": 0, "now": now})
    return None if rows is None else [(r[0], r[1], r[2]) for r in rows]


_INBOUND = cast(Table, InboundMessage.__table__)
# The UPDATEs run once per row (asyncpg's executemany, one round trip), not as a join
# with `unnest`: a prepared join keeps the plan it got while the table was small, and
# a hash join over the whole table made every group slower as the table grew (seen in
# an A/B run, docs/BENCHMARKS.md, "Seventh step"). By primary key, a row is one index
# lookup whatever the plan.
_MARK_NAMES = ("contact_id", "command", "reply_text", "handled_at", "outcome")
_MARK_HANDLED = Direct(
    _INBOUND.update()
    .where(_INBOUND.c.id == bindparam("inbound_id", type_=Integer()))
    .values({name: bindparam(name, type_=_INBOUND.c[name].type) for name in _MARK_NAMES}),
    ["inbound_id", *_MARK_NAMES],
)


async def mark_handled(session: AsyncSession, marks: Sequence[Mapping[str, Any]]) -> bool:
    """Record on each inbound row (`inbound_id`) its contact, command, reply text,
    handled time and outcome, in one round trip. False: not here (SQLAlchemy's way)."""
    rows = [{**m, "handled_at": _aware(m["handled_at"])} for m in marks]
    return await _MARK_HANDLED.run_many(session, rows)


_CONTACTS = cast(Table, Contact.__table__)
_LIMIT_NAMES = ("allowance", "allowance_at", "limited_at", "failed_lookups", "failed_lookups_at")
_KEEP_LIMITS = Direct(
    _CONTACTS.update()
    .where(_CONTACTS.c.id == bindparam("contact_id", type_=Integer()))
    .values(
        {
            **{name: bindparam(name, type_=_CONTACTS.c[name].type) for name in _LIMIT_NAMES},
            "updated_at": bindparam("now", type_=_STAMP),
        }
    ),
    ["contact_id", *_LIMIT_NAMES, "now"],
)
_TIMES = ("allowance_at", "limited_at", "failed_lookups_at")


async def keep_limits(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Write contacts' abuse-limit columns (`models.inbox.LIMIT_COLUMNS`, by
    `contact_id`) in one round trip. False: not here (SQLAlchemy's way)."""
    now = utcnow()
    runs = [{**r, **{name: _aware(r[name]) for name in _TIMES}, "now": now} for r in rows]
    return await _KEEP_LIMITS.run_many(session, runs)


_NEW_COLUMNS: dict[str, TypeEngine[Any]] = {
    "channel": String(),
    "provider_id": String(),
    "from_address": String(),
    "to_address": String(),
    "body": Text(),
    "raw": JSON(),
}
_NEW_ROWS = unnest(_NEW_COLUMNS)
_STORE_INBOUND = Direct(
    pg_insert(_INBOUND)
    .from_select(
        [*_NEW_COLUMNS, "attempts", "received_at"],
        select(
            *(_NEW_ROWS.c[name] for name in _NEW_COLUMNS),
            bindparam("attempts", type_=Integer()),
            bindparam("now", type_=_STAMP),
        ),
    )
    .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    .returning(_INBOUND.c.id, _INBOUND.c.channel, _INBOUND.c.provider_id),
    [*_NEW_COLUMNS, "attempts", "now"],
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
    arrays: dict[str, Any] = {name: [r[name] for r in rows] for name in _NEW_COLUMNS}
    arrays["raw"] = [json.dumps(raw) for raw in arrays["raw"]]
    got = await _STORE_INBOUND.fetch(session, {**arrays, "attempts": 1, "now": now})
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
