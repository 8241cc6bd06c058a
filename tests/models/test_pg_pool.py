"""PostgreSQL's pool (`models.db.make_engine`): a connection that sat idle is pinged
before it is used, and replaced when the server dropped it, so a database restart costs
no error to whoever comes after it; a connection used a moment ago is not pinged (a
ping is three round trips, and a busy gateway checks connections out all the time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

import models.db
from models.db import make_engine
from tests.support import missing_service


@pytest.fixture
async def engine(pg_url: str | None, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    if pg_url is None:
        missing_service("PostgreSQL not reachable")
    engine = make_engine(pg_url)
    yield engine
    await engine.dispose()


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(pg_url: str, pid: int) -> None:
    """The server drops backend `pid`, as a restart or a firewall would."""
    killer = make_engine(pg_url)
    try:
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()


def _idle_after(seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """How long a connection must sit in the pool before it is pinged (read at checkout)."""
    monkeypatch.setattr(models.db, "PING_AFTER_IDLE_SECONDS", seconds)


def _count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    dialect = engine.sync_engine.dialect
    original = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return original(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


async def test_an_idle_connection_the_server_dropped_is_replaced_without_an_error(
    engine: AsyncEngine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = await _backend(engine)
    await _kill(pg_url, pid)
    _idle_after(0.0, monkeypatch)  # it sat in the pool long enough
    assert await _backend(engine) != pid  # no error: a new connection took its place


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _idle_after(60.0, monkeypatch)
    first = await _backend(engine)
    pings = _count_pings(engine, monkeypatch)
    for _ in range(5):
        assert await _backend(engine) == first
    assert pings == []
    await asyncio.sleep(0.05)
    _idle_after(0.01, monkeypatch)
    assert await _backend(engine) == first  # alive: pinged, kept
    assert pings == [1]


async def test_a_connection_dropped_while_busy_fails_once_then_the_pool_recovers(
    engine: AsyncEngine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _idle_after(60.0, monkeypatch)
    pid = await _backend(engine)
    await _kill(pg_url, pid)
    # used a moment ago: not pinged, so the first statement finds it gone (a group of
    # messages then runs each message alone, gateway.group_commit) ...
    with pytest.raises(exc.DBAPIError) as lost:
        await _backend(engine)
    assert lost.value.connection_invalidated
    # ... and the next checkout gets a new connection
    assert await _backend(engine) != pid
