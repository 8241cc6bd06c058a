"""SQLite's adapter (`models.sqlite_driver`): one hand-off to aiosqlite's thread a
statement, and everything SQLAlchemy reads from a cursor the same as before: rows,
row counts, new ids, many parameter sets, errors and a closed connection. The whole
suite runs on it; these pin what the rest only exercises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import exc, text

from models.db import make_engine
from models.sqlite_driver import DRIVER


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/driver.db")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def test_the_settings_url_gets_the_one_hop_adapter(engine: Any) -> None:
    assert engine.url.drivername == DRIVER
    async with engine.connect() as conn:
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        sync = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
    assert (mode, sync) == ("wal", 2)  # WAL and FULL, set at connect through this cursor


def _count_hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the name of each function handed to aiosqlite's thread, in order."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_a_statement_is_one_hand_off(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # the connection is made and checked out
        calls = _count_hand_offs(monkeypatch)
        rows = (await conn.execute(text("SELECT 1 UNION ALL SELECT 2"))).all()
        await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
    assert [r[0] for r in rows] == [1, 2]
    # two statements, two hand-offs, then the rollback as the connection goes back
    assert calls[:2] == ["_run", "_run"]
    assert len(calls) == 3


async def test_rows_counts_ids_and_many(engine: Any) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
        assert inserted.lastrowid == 1
        await conn.execute(
            text("INSERT INTO t (name) VALUES (:n)"), [{"n": f"n{i}"} for i in range(5)]
        )
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 2"))
        assert updated.rowcount == 4
        returned = await conn.execute(text("DELETE FROM t WHERE id = 1 RETURNING name"))
        assert returned.scalars().all() == ["x"]
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT name FROM t ORDER BY id"))
        assert result.fetchmany(2) == [("n0",), ("n1!",)]
        assert result.fetchone() == ("n2!",)
        assert result.fetchall() == [("n3!",), ("n4!",)]


async def test_errors_are_sqlalchemys_and_undo_the_transaction(engine: Any) -> None:
    with pytest.raises(exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('same')"))
            await conn.execute(text("INSERT INTO t (name) VALUES ('same')"))
    with pytest.raises(exc.OperationalError):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_a_closed_connection_is_an_operational_error(engine: Any) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.close()
        with pytest.raises(exc.OperationalError):
            await conn.execute(text("SELECT 1"))


async def test_a_connection_back_after_its_commit_costs_no_hand_off(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # the connection is made
    calls = _count_hand_offs(monkeypatch)
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('kept')"))
    # the statement and the commit; the pool's rollback found nothing open
    assert calls == ["_run", "commit"]


async def test_what_was_not_committed_is_rolled_back_when_the_connection_goes_back(
    engine: Any,
) -> None:
    conn = await engine.connect()
    await conn.execute(text("INSERT INTO t (name) VALUES ('dropped')"))
    await conn.close()  # back to the pool with the write still open: rolled back
    async with engine.connect() as again:
        assert (await again.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
        assert not (await again.get_raw_connection()).driver_connection._connection.in_transaction
