"""Several outbox workers on one database, on SQLite and PostgreSQL: each row is sent by
one of them, once; the rows a crashed worker had leased are sent by another once the
lease runs out, and not before.

Each "worker" is a `Runtime` of its own (its own engine and connections, as a process
on another host has); they share the database and the SMTP server (the suite's capture).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.email_channel import handle_email
from gateway.outbox import LEASE, _claim, deliver_due
from gateway.runtime import Runtime
from gateway.settings import CityConfig
from models.messages import OutboundMessage
from tests.faults.test_smtp_refusal import Clock, citizen_mail, mail_settings
from tests.mailservers import SmtpCapture

MAILS = 40


@pytest.fixture
async def workers(
    database_url: str, city_config: CityConfig, smtp_capture: SmtpCapture, tmp_path: Path
) -> AsyncIterator[list[Runtime]]:
    settings = mail_settings(database_url, smtp_capture, tmp_path)
    runtimes = [Runtime.create(settings, city_config) for _ in range(3)]
    yield runtimes
    for runtime in runtimes:
        await runtime.close()


async def queue(runtime: Runtime, n: int) -> list[OutboundMessage]:
    """`n` citizens ask for HELP by email: `n` replies wait in the outbox."""
    for i in range(n):
        raw = citizen_mail(f"citizen{i}@example.org", "HELP", "HELP")
        await handle_email(runtime, raw, fallback_id=f"help-{i}")
    return await rows(runtime)


async def rows(runtime: Runtime) -> list[OutboundMessage]:
    async with runtime.sessions() as session:
        stmt = select(OutboundMessage).where(OutboundMessage.channel == "email")
        return list((await session.execute(stmt.order_by(OutboundMessage.id))).scalars())


def sent_ids(capture: SmtpCapture) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in capture.messages)


async def test_workers_side_by_side_send_each_row_once(
    workers: list[Runtime], smtp_capture: SmtpCapture
) -> None:
    queued = await queue(workers[0], MAILS)
    assert len(queued) == MAILS
    # Every worker passes over the outbox at once, again and again, a few rows at a time.
    for _ in range(8):
        await asyncio.gather(*(deliver_due(w, limit=4) for w in workers))
    after = await rows(workers[0])
    assert [r.status for r in after] == ["sent"] * MAILS
    assert [r.attempts for r in after] == [1] * MAILS  # no row was claimed twice
    got = sent_ids(smtp_capture)
    assert set(got) == {r.message_id for r in after}
    assert max(got.values()) == 1


async def test_a_crashed_workers_rows_are_sent_by_another_after_its_lease(
    workers: list[Runtime], smtp_capture: SmtpCapture
) -> None:
    clock = Clock(workers[0].clock())
    for worker in workers:
        worker.clock = clock
    queued = await queue(workers[0], 6)
    crashed, survivor = workers[0], workers[1]
    leased = await _claim(crashed, limit=4)  # it claims four, then dies before sending
    assert len(leased) == 4

    await deliver_due(survivor)  # the two not leased go at once; the leased wait
    assert len(smtp_capture.messages) == 2
    clock.now += LEASE / 2
    await deliver_due(survivor)
    assert len(smtp_capture.messages) == 2  # the lease still holds

    clock.now += LEASE  # the lease ran out: the survivor takes the rows over
    await deliver_due(survivor)
    after = await rows(survivor)
    assert [r.status for r in after] == ["sent"] * len(queued)
    got = sent_ids(smtp_capture)
    assert set(got) == {r.message_id for r in after}
    assert max(got.values()) == 1
