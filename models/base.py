"""Declarative base, naming convention, the time helpers every model shares, and the
per-transaction memory (`per_transaction`) the read-ahead of a group keeps in
`session.info`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    MetaData,
    Select,
    String,
    TypeDecorator,
    any_,
    bindparam,
    event,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import ReturningInsert

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


_PER_TRANSACTION: set[str] = set()


def per_transaction(key: str) -> str:
    """A `session.info` key whose value is forgotten when the session's transaction ends
    (commit or rollback; not a savepoint's end): what was read ahead and locked in one
    transaction is never taken for true in the next."""
    _PER_TRANSACTION.add(key)
    return key


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction, *_: Any) -> None:
    if transaction.parent is None:
        for key in _PER_TRANSACTION:
            session.info.pop(key, None)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InsertNew:
    """`INSERT … ON CONFLICT (key) DO NOTHING RETURNING` the rows, built once for each
    dialect (a statement made per call costs more than running it): a row whose key is
    already stored is left alone and not returned, so a racing insert neither fails nor
    doubles."""

    def __init__(self, model: type[Base], *key: str) -> None:
        postgres = pg_insert(model).on_conflict_do_nothing(index_elements=key)
        sqlite = sqlite_insert(model).on_conflict_do_nothing(index_elements=key)
        self._postgres: ReturningInsert[Any] = postgres.returning(model)
        self._sqlite: ReturningInsert[Any] = sqlite.returning(model)

    def on(self, session: AsyncSession) -> ReturningInsert[Any]:
        """The statement for the database `session` talks to."""
        postgres = session.get_bind().dialect.name == "postgresql"
        return self._postgres if postgres else self._sqlite


def unbounded(type_: Any) -> Any:
    """A column's type without its length, for an array of its values: an explicit cast
    to VARCHAR(n) cuts a longer text silently, where the column itself refuses it (as
    through SQLAlchemy) and a lookup must not match a longer text by its prefix."""
    return String() if isinstance(type_, String) and type_.length else type_


S = TypeVar("S", bound=Executable)


class ForEither(Generic[S]):
    """A SELECT whose `column IN (a list)` is bound as one value, built once for each
    dialect: `= ANY(:name)` of an array on PostgreSQL, `IN (SELECT value FROM
    json_each(:name))` of a JSON array on SQLite. An expanding IN is rendered anew at
    every execution and is a new statement for each length of the list (asyncpg
    prepares each); this is one statement whatever the length
    (docs/BENCHMARKS.md, "Ninth step")."""

    def __init__(self, build: Callable[[ColumnElement[bool]], S], column: Any, name: str):
        items = ARRAY(unbounded(column.type))
        self._postgres = build(column == any_(bindparam(name, type_=items)))
        listed: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam(name, type_=JSON()))
        )
        self._sqlite = build(column.in_(listed))

    def on(self, session: AsyncSession) -> S:
        """The statement for the database `session` talks to."""
        postgres = session.get_bind().dialect.name == "postgresql"
        return self._postgres if postgres else self._sqlite
