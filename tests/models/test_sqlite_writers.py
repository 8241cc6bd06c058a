"""SQLite's writers' lock (`models.sqlite_direct`): a group's first write takes a lock
file beside the database, so that the writers of several processes take turns in the
kernel instead of polling in SQLite's busy handler; it is let go when the transaction
ends, however it ends, and never taken by a transaction that has written already (that
one holds SQLite's own write lock, and waiting then could deadlock).

SQLite only: the lock is a property of SQLite's one-writer design; PostgreSQL's writers
do not take turns. Each engine here stands for a process (its connections open the
lock file themselves, as another process's would)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models.contacts import get_or_create_contact
from models.db import make_engine, make_sessionmaker, migrate
from models.inbox import NewInbound, store_inbound_group
from models.messages import InboundMessage
from tests.support import ROOT


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "citygate.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()
    yield path


@pytest.fixture
async def engines(database: Path) -> AsyncIterator[list[AsyncEngine]]:
    made = [make_engine(f"sqlite+aiosqlite:///{database}") for _ in range(2)]
    yield made
    for engine in made:
        await engine.dispose()


@pytest.fixture
def probe(database: Path) -> Iterator[int]:
    """A descriptor of the lock file of its own: `_held` tries it without waiting."""
    fd = os.open(f"{database}-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def _held(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _sms(n: int) -> NewInbound:
    return NewInbound("sms", f"SM{n:032d}", f"+98912{n:07d}", "+15005550006", "HELP", {})


async def _count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count(InboundMessage.id)))).scalar_one())


async def test_a_group_holds_the_lock_until_its_commit(
    engines: list[AsyncEngine], probe: int
) -> None:
    first, second = (make_sessionmaker(e) for e in engines)
    async with first.begin() as session:
        await store_inbound_group(session, [_sms(1), _sms(2)])
        assert _held(probe), "the group's first write took the lock"
        # Another process's group waits for it, in the kernel, before it writes.
        waiting = asyncio.create_task(_store(second, [_sms(3)]))
        await asyncio.sleep(0.3)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 10)
    assert not _held(probe)
    assert await _count(first) == 3


async def _store(sessions: async_sessionmaker[AsyncSession], messages: list[NewInbound]) -> None:
    async with sessions.begin() as session:
        await store_inbound_group(session, messages)


async def test_a_rolled_back_group_lets_go(engines: list[AsyncEngine], probe: int) -> None:
    sessions = make_sessionmaker(engines[0])
    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            await store_inbound_group(session, [_sms(1)])
            assert _held(probe)
            raise RuntimeError("a handler failed")
    assert not _held(probe)
    assert await _count(sessions) == 0
    await _store(sessions, [_sms(1)])  # and the next group takes it again
    assert await _count(sessions) == 1


async def test_a_transaction_that_wrote_first_does_not_wait(
    engines: list[AsyncEngine], probe: int
) -> None:
    """B writes (SQLite's write lock is B's), then A's group takes the writers' lock and
    waits for SQLite's; B's own store must not wait for A's lock, or neither ends."""
    a, b = (make_sessionmaker(e) for e in engines)
    async with b.begin() as b_session:
        await get_or_create_contact(b_session, channel="sms", address="+989120000001")
        a_group = asyncio.create_task(_store(a, [_sms(1)]))
        await asyncio.sleep(0.3)
        assert _held(probe), "A's group holds the writers' lock, waiting for SQLite's"
        await asyncio.wait_for(store_inbound_group(b_session, [_sms(2)]), 5)
    await asyncio.wait_for(a_group, 10)
    assert await _count(a) == 2


async def test_many_groups_of_two_processes(database: Path) -> None:
    """Two processes storing 40 groups each, five at a time: every message stored once,
    no group failed, and the lock free at the end."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from models.db import make_engine, make_sessionmaker
        from models.inbox import NewInbound, store_inbound_group

        async def main(url, base):
            engine = make_engine(url)
            sessions = make_sessionmaker(engine)
            async def group(g):
                async with sessions.begin() as session:
                    await store_inbound_group(session, [
                        NewInbound("sms", f"SM{base + g * 10 + i:032d}", "+98912", None, "HELP", {})
                        for i in range(10)
                    ])
            for start in range(0, 40, 5):
                await asyncio.gather(*(group(g) for g in range(start, start + 5)))
            await engine.dispose()

        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
        """
    )
    url = f"sqlite+aiosqlite:///{database}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen([sys.executable, "-c", script, url, str(base)], env=env)
        for base in (0, 100_000)
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    engine = make_engine(url)
    try:
        assert await _count(make_sessionmaker(engine)) == 800
    finally:
        await engine.dispose()
    fd = os.open(f"{database}-writers.lock", os.O_RDWR)
    try:
        assert not _held(fd)
    finally:
        os.close(fd)
