"""What the two direct paths share (`models.pg_direct` for asyncpg, `models.sqlite_direct`
for SQLite): a statement compiled once with its values bound as SQLAlchemy binds them,
the columns of the rows a group writes, and the session's objects made from the inbound
rows a group stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import DateTime, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.base import manager_of_class
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator, TypeEngine

from models.messages import InboundMessage

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
# The columns of a new inbound row a group stores (with `received_at` and `attempts`).
NEW_COLUMNS = ("channel", "provider_id", "from_address", "to_address", "body", "raw")


def reply_rows(values: Sequence[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Reply rows with every `REPLY_COLUMNS` (None when not given), made now, no attempt."""
    return [
        {
            **dict.fromkeys(REPLY_COLUMNS),
            **v,
            "created_at": v.get("created_at") or now,
            "updated_at": now,
            "attempts": 0,
        }
        for v in values
    ]


class Compiled:
    """A statement compiled once for a dialect: its SQL, its parameters' order and
    each parameter's bind processing, what SQLAlchemy does to a value for that dialect
    (`UTCDateTime` makes a time naive UTC on SQLite, JSON is serialised, an ARRAY
    applies its item's). Its bound parameters must be exactly `parameters`: a column
    default SQLAlchemy would fill in at execution is refused here, at import, instead
    of left NULL."""

    def __init__(
        self, statement: ClauseElement, parameters: Sequence[str], dialect: Dialect
    ) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        if set(self.names) != set(parameters):
            raise ValueError(f"bound parameters {self.names}, expected {tuple(parameters)}")
        self._binds = tuple(
            (name, _processor(compiled.binds[name].type, dialect)) for name in self.names
        )
        self._many: dict[int, str] = {}

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        return [
            parameters[name] if bind is None else bind(parameters[name])
            for name, bind in self._binds
        ]

    def rows_sql(self, count: int) -> str:
        """An INSERT of one row of VALUES made an INSERT of `count` rows (`?` parameters:
        SQLite's; asyncpg takes arrays instead, `models.pg_direct.rows_of`)."""
        sql = self._many.get(count)
        if sql is None:
            one = "(" + ", ".join("?" * len(self.names)) + ")"
            if self.sql.count(one) != 1:
                raise ValueError(f"not a one-row INSERT: {self.sql}")
            sql = self.sql.replace(one, ", ".join([one] * count))
            if len(self._many) < 64:
                self._many[count] = sql
        return sql


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The bind processing of a value of `type_` for `dialect`; for a time, remembering the
    last one: a group's rows mostly carry the same `now` object, and on SQLite formatting
    a time (`UTCDateTime`, then the dialect's string) was a twentieth of the event loop's
    CPU (docs/BENCHMARKS.md, "Ninth step"). By identity, so only for immutable values."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    base = type_.impl_instance if isinstance(type_, TypeDecorator) else type_
    if process is None or not isinstance(base, DateTime):
        return process
    last: tuple[Any, Any] = (None, process(None))

    def remembered(value: Any) -> Any:
        nonlocal last
        given, made = last
        if value is given:
            return made
        made = process(value)
        last = (value, made)  # one assignment: never a value with another's result
        return made

    return remembered


_INBOUND = cast(Table, InboundMessage.__table__)
# The columns a new row leaves at their default (None), set on the objects made here so
# that none is expired (an expired attribute would be loaded, and that cannot be awaited).
_MANAGER = manager_of_class(InboundMessage)
_UNSET = {
    c.key: None
    for c in _INBOUND.columns
    if c.key not in (*NEW_COLUMNS, "id", "attempts", "received_at")
}


def adopt_inbound(
    session: AsyncSession,
    got: Sequence[Sequence[Any]],
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[tuple[str, str], InboundMessage]:
    """The inbound rows an INSERT … RETURNING id, channel, provider_id stored (`got`, of
    `rows`), made the session's own persistent objects, by (channel, provider id)."""
    given = {(r["channel"], r["provider_id"]): r for r in rows}
    made: dict[tuple[str, str], InboundMessage] = {}
    for id_, channel, provider_id in got:
        values = given[(channel, provider_id)]
        # As a query's loading makes an object (instrumented, its __init__ not run, the
        # values put in its __dict__): the constructor's attribute events cost more than
        # the whole statement (docs/BENCHMARKS.md, "Seventh step").
        row = _MANAGER.new_instance()
        row.__dict__.update(_UNSET, id=id_, attempts=1, received_at=now)
        row.__dict__.update((name, values[name]) for name in NEW_COLUMNS)
        make_transient_to_detached(row)  # as if loaded: no pending change
        session.add(row)
        made[(channel, provider_id)] = row
    return made
