"""One poller per mailbox (`gateway.mailbox_lock`), on SQLite and PostgreSQL: the lock
itself, and two real pollers on one Dovecot mailbox, the second taking over when the
first stops. Killing a poller process (kill -9) is in tests/faults/."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text

from gateway.email_poller import run_poller
from gateway.mailbox_lock import AdvisoryLock, lock_key, mailbox_lock
from gateway.runtime import Runtime
from models.db import make_engine
from models.messages import InboundMessage, OutboundMessage
from tests.gateway.test_email import mail
from tests.mailservers import Dovecot
from tests.support import mail_server_settings, make_settings


def poller_settings(database_url: str, dovecot: Dovecot, tmp_path, **extra):
    return make_settings(
        database_url,
        **mail_server_settings(dovecot),
        imap_poll_seconds=0.3,
        imap_idle=False,
        poller_lock_retry=0.3,
        data_dir=tmp_path,
        secret_key="test-secret-key-for-tokens",
        **extra,
    )


async def test_a_mailbox_has_one_holder_at_a_time(database_url, tmp_path):
    engines = [make_engine(database_url) for _ in range(2)]
    try:
        first = mailbox_lock(engines[0], "desk@imap/INBOX", tmp_path)
        second = mailbox_lock(engines[1], "desk@imap/INBOX", tmp_path)
        other = mailbox_lock(engines[1], "desk@imap/Other", tmp_path)
        assert await first.acquire()
        assert not await second.acquire()
        assert await other.acquire()  # another mailbox is another lock
        await first.release()
        assert await second.acquire()
        assert not await first.acquire()
        await second.release()
        await other.release()
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_holder_whose_connection_dies_learns_it_and_another_takes_over(pg_url):
    if pg_url is None:
        pytest.skip("PostgreSQL only: an advisory lock lives on a database connection")
    engines = [make_engine(pg_url) for _ in range(3)]
    try:
        holder = AdvisoryLock(engines[0], "desk@imap/INBOX", heartbeat=0.2)
        waiting = AdvisoryLock(engines[1], "desk@imap/INBOX", heartbeat=0.2)
        assert await holder.acquire()
        assert not await waiting.acquire()
        # The holder's session ends (as when its process dies or the server restarts).
        async with engines[2].connect() as admin:
            ended = await admin.scalar(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' "
                    "AND objid = CAST(CAST(:key AS bigint) & 4294967295 AS oid)"
                ),
                {"key": lock_key("desk@imap/INBOX")},
            )
            assert ended
        await asyncio.wait_for(holder.lost.wait(), 10)
        assert await waiting.acquire()
        await holder.release()
        await waiting.release()
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.fixture
async def two_pollers(
    database_url, city_config, dovecot: Dovecot, tmp_path
) -> AsyncIterator[list[Runtime]]:
    runtimes = [
        Runtime.create(poller_settings(database_url, dovecot, tmp_path), city_config)
        for _ in range(2)
    ]
    yield runtimes
    for runtime in runtimes:
        await runtime.close()


async def _handled(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(InboundMessage.provider_id).where(InboundMessage.channel == "email")
        )
        return [r[0] for r in rows]


async def _until(predicate, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_two_pollers_on_one_mailbox_handle_each_mail_once_and_take_over(
    two_pollers, dovecot: Dovecot, caplog
):
    caplog.set_level(logging.INFO, logger="citygate.poller")
    first, second = two_pollers
    stops = [asyncio.Event(), asyncio.Event()]

    def said(words: str) -> int:
        return sum(words in r.getMessage() for r in caplog.records)

    async def saying(words: str, times: int = 1) -> bool:
        return said(words) >= times

    tasks = [asyncio.create_task(run_poller(first, stops[0]))]
    try:
        await _until(lambda: saying("polling mailbox"))
        tasks.append(asyncio.create_task(run_poller(second, stops[1])))
        await _until(lambda: saying("standing by"))
        for n in range(6):
            await dovecot.append(mail("HELP", subject=f"HELP {n}").as_bytes())
        await _until(lambda: _count(first, 6))
        assert said("polling mailbox") == 1  # the second never polled
        # The holder stops (as at a deploy): the other takes the mailbox over.
        stops[0].set()
        await asyncio.wait_for(tasks[0], 20)
        await _until(lambda: saying("polling mailbox", 2))
        for n in range(3):
            await dovecot.append(mail("HELP", subject=f"later {n}").as_bytes())
        await _until(lambda: _count(second, 9))
    finally:
        for stop in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    ids = await _handled(first)
    assert len(ids) == len(set(ids)) == 9
    assert await dovecot.count("Processed") == 9
    assert await dovecot.count("INBOX") == 0
    async with first.sessions() as session:
        replies = await session.scalar(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.channel == "email")
        )
    assert replies == 9  # one answer each: nothing handled twice


async def _count(runtime: Runtime, n: int) -> bool:
    return len(await _handled(runtime)) >= n
