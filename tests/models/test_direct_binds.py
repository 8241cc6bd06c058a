"""A direct statement binds each value as SQLAlchemy would (`models.direct.Compiled`),
including the times it remembers: a group binds the same `now` object in many rows, and
the last time's processing is kept, by identity, for the next row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, bindparam
from sqlalchemy.engine import Dialect

from models.direct import Compiled
from models.messages import InboundMessage
from models.pg_direct import _DIALECT as ASYNCPG
from models.sqlite_direct import DIALECT as SQLITE

INBOUND = cast(Table, InboundMessage.__table__)


@pytest.mark.parametrize("dialect", [SQLITE, ASYNCPG], ids=["sqlite", "asyncpg"])
def test_each_time_is_bound_as_sqlalchemy_binds_it(dialect: Dialect) -> None:
    compiled = Compiled(
        INBOUND.update()
        .where(INBOUND.c.id == bindparam("row_id"))
        .values(received_at=bindparam("received_at")),
        ["row_id", "received_at"],
        dialect,
    )
    column = INBOUND.c.received_at.type
    plain = column.dialect_impl(dialect).bind_processor(dialect)
    assert plain is not None
    now = datetime(2026, 12, 6, 4, 30, 15, 123456, tzinfo=UTC)
    tehran = now.astimezone(timezone(timedelta(hours=3, minutes=30)))
    naive = now.replace(tzinfo=None)
    values: list[Any] = [now, now, now + timedelta(microseconds=1), None, tehran, naive, now]
    got = [
        compiled.arguments({"row_id": 1, "received_at": v})[compiled.names.index("received_at")]
        for v in values
    ]
    assert got == [plain(v) for v in values]
    assert len({repr(g) for g in got[:3]}) == 2  # the next microsecond is not the last one
    if dialect is SQLITE:  # stored naive, in UTC, whatever zone it was given in
        assert got[4] == got[5] == got[0] == "2026-12-06 04:30:15.123456"
