"""Fault: the SMTP server refuses every message (451, try later) for a while.

Replies and notifications are queued through the real email pipeline: citizens' mails
(HELP, and a land-use form that files a case) go through `handle_email`, then every case
filed gets a status change that notifies its citizen. The SMTP server (aiosmtpd, the
suite's capture server) answers 451 to every message for the first twenty minutes of
the runtime's clock, then accepts. The outbox worker (`run_outbox`) runs meanwhile; the
clock is the runtime's own and is moved on to the next retry whenever nothing is due,
so the real backoff (30 s doubling, with jitter) is followed without waiting for it.
Every queued mail must be delivered exactly once, after at least one refusal, and
none may end as a dead letter. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.case_work import Change, apply_change
from gateway.email_channel import handle_email
from gateway.outbox import run_outbox
from gateway.runtime import Runtime
from gateway.settings import CityConfig, Settings
from models.base import utcnow
from models.cases import Case
from models.messages import OutboundMessage
from tests.faults.ledger import Figures
from tests.mailservers import SmtpCapture
from tests.support import DESK, mail_server_settings, make_settings

HELP_CITIZENS = 12
FORM_CITIZENS = 6  # each: the reply filing the case, then a status-change notification
REFUSING_FOR = timedelta(minutes=20)  # of the runtime's clock
REAL_DEADLINE = 90.0  # seconds of real time for the whole delivery
FORM = """سلام، لطفاً استعلام کاربری ثبت شود.

خدمت: ۶
کد پستی ملک: ۱۴۳۵۶-۷۸۹۱۱
منطقه شهرداری: ۶
پلاک ثبتی: ۱۲۳/{n}
کاربری مورد نظر: مسکونی
"""


class Clock:
    """The runtime's clock, moved on by the test only."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def mail_settings(database_url: str, smtp: SmtpCapture, data_dir: Path) -> Settings:
    """Settings that send mail to the suite's SMTP capture (no IMAP)."""
    return make_settings(
        database_url,
        **mail_server_settings(smtp=smtp),
        smtp_timeout=10,
        data_dir=data_dir,
        secret_key="faults-secret-key-0123456789",
    )


@pytest.fixture
async def runtime(
    database_url: str, city_config: CityConfig, smtp_capture: SmtpCapture, tmp_path: Path
) -> AsyncIterator[Runtime]:
    rt = Runtime.create(mail_settings(database_url, smtp_capture, tmp_path), city_config)
    yield rt
    await rt.close()


def citizen_mail(sender: str, subject: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = DESK
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    message["Date"] = "Sat, 28 Nov 2026 10:00:00 +0330"
    message.set_content(body)
    return message.as_bytes()


async def queue_mail(runtime: Runtime) -> None:
    """Citizens' mails through the pipeline, then a notifying change on every case."""
    for n in range(HELP_CITIZENS):
        raw = citizen_mail(f"help{n}@example.org", "HELP", "HELP")
        await handle_email(runtime, raw, fallback_id=f"help-{n}")
    for n in range(FORM_CITIZENS):
        raw = citizen_mail(f"form{n}@example.org", "درخواست", FORM.format(n=n + 10))
        await handle_email(runtime, raw, fallback_id=f"form-{n}")
    async with runtime.sessions.begin() as session:
        for case in (await session.execute(select(Case))).scalars().all():
            change = Change(status="in_review", note="بررسی آغاز شد")
            await apply_change(session, runtime, case, change, actor="faults")


async def outbox(runtime: Runtime) -> list[OutboundMessage]:
    async with runtime.sessions() as session:
        stmt = select(OutboundMessage).where(OutboundMessage.channel == "email")
        return list((await session.execute(stmt.order_by(OutboundMessage.id))).scalars())


async def deliver_while_refusing(runtime: Runtime, capture: SmtpCapture, clock: Clock) -> None:
    """Run the outbox worker; whenever nothing is due and nothing is being sent, move
    the clock to the next retry (the server accepts once it is past REFUSING_FOR)."""
    opens_at = clock.now + REFUSING_FOR
    capture.refuse = True
    stop = asyncio.Event()
    worker = asyncio.create_task(run_outbox(runtime, stop, interval=0.02))
    try:
        deadline = time.monotonic() + REAL_DEADLINE
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            rows = await outbox(runtime)
            if any(r.status == "sending" for r in rows):
                continue  # a pass is under way: its lease must not run out under it
            waiting = [r.next_attempt_at for r in rows if r.status == "pending"]
            if not waiting:
                return
            due = min(w for w in waiting if w is not None)
            if due > clock.now:
                clock.now = due + timedelta(seconds=1)
                capture.refuse = clock.now < opens_at
        raise AssertionError(f"outbox not done after {REAL_DEADLINE} s of real time")
    finally:
        stop.set()
        await worker


async def test_smtp_refusing_for_a_while_then_every_mail_is_delivered_once(
    runtime: Runtime,
    smtp_capture: SmtpCapture,
    database_url: str,
    fault_figures: Callable[[Figures], None],
) -> None:
    clock = Clock(utcnow())
    runtime.clock = clock
    await queue_mail(runtime)
    queued = await outbox(runtime)
    expected = HELP_CITIZENS + 2 * FORM_CITIZENS
    assert len(queued) == expected, [(r.to_address, r.status, r.body[:40]) for r in queued]
    assert {r.status for r in queued} == {"pending"}

    await deliver_while_refusing(runtime, smtp_capture, clock)

    rows = await outbox(runtime)
    ids = {r.message_id for r in rows}
    got = Counter(str(m.message["Message-ID"]) for m in smtp_capture.messages)
    delivered = {i for i in got if i in ids}
    backend = database_url.split("+")[0]
    figures = Figures(
        f"smtp refusing for a while ({backend})",
        sent=len(queued),
        accepted=sum(got.values()),
        stored=len(rows),
        answered=sum(1 for r in rows if r.status == "sent"),
        duplicated=sum(n - 1 for n in got.values()) + sum(1 for i in got if i not in ids),
        lost=len(ids - delivered),
        notes={
            "refused (451)": smtp_capture.refused,
            "attempts": sum(r.attempts for r in rows),
            "dead": sum(1 for r in rows if r.status == "dead"),
        },
    )
    fault_figures(figures)
    assert [r.status for r in rows] == ["sent"] * expected, [(r.status, r.last_error) for r in rows]
    assert all(r.attempts >= 2 for r in rows), "a mail went out without being refused first"
    assert smtp_capture.refused >= expected
    by_id = {r.message_id: r for r in rows}
    for captured in smtp_capture.messages:
        row = by_id[str(captured.message["Message-ID"])]
        assert captured.rcpt_tos == [row.to_address]
    assert (figures.duplicated, figures.lost) == (0, 0)
    assert figures.accepted == figures.answered == expected
