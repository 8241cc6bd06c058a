"""Faults of the mailbox: Dovecot down for 30 seconds, and a poller killed with SIGKILL
while another stands by.

Both run the real `citygate serve --no-http` processes on PostgreSQL against a
throw-away Dovecot and the suite's SMTP capture. Citizens' mails are HELP requests and
land-use forms that file a case. Afterwards every mail must have one inbound row,
handled without error, one reply delivered by SMTP, and each form one case: nothing
lost, nothing handled twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from models.db import make_engine
from models.messages import InboundMessage
from tests.faults.ledger import Figures, mail_ledger, report
from tests.faults.processes import Worker, migrate
from tests.faults.test_smtp_refusal import FORM, citizen_mail
from tests.mailservers import Dovecot, SmtpCapture
from tests.support import ROOT, as_environment, mail_server_settings

OUTAGE_SECONDS = 30.0  # Dovecot stays down this long
TAKEOVER_LIMIT = 30.0  # the standby poller must poll within this after the holder dies
SETTLE_TIMEOUT = 90.0  # every mail answered this long after the last fault at most
HOLDS = "citygate_poller_holds_lock"
CONFIG_SECRET = "faults-secret-key-0123456789abcdef"


def worker_env(database_url: str, dovecot: Dovecot, smtp: SmtpCapture, data: Path) -> dict:
    """The environment of a `citygate serve --no-http` on these servers: a poll every
    second, an unreachable server tried again within 5 s."""
    return as_environment(
        {
            "config": ROOT / "config.yaml",
            "database_url": database_url,
            "secret_key": CONFIG_SECRET,
            "data_dir": data,
            **mail_server_settings(dovecot, smtp),
            "imap_poll_seconds": 1,
            "imap_retry_max": 5,
        }
    )


class Mails:
    """The mails appended to the mailbox: Message-ID → sender, and the form senders."""

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        self.sent: dict[str, str] = {}
        self.forms: set[str] = set()

    async def append(self, start: int, stop: int) -> None:
        """Mails `start`…`stop - 1`, over one IMAP connection: a burst, as after a night."""
        raws = []
        for n in range(start, stop):
            sender = f"citizen{n}@example.org"
            if n % 3 == 0:  # a form that files a case
                raw = citizen_mail(sender, "درخواست", FORM.format(n=n + 10))
                self.forms.add(sender)
            else:
                raw = citizen_mail(sender, "HELP", "HELP")
            message_id = _bare(raw.split(b"Message-ID: ")[1].split(b"\n")[0].decode().strip())
            self.sent[message_id] = sender
            raws.append(raw)

        def burst() -> None:
            with self.dovecot.connect() as conn:
                for raw in raws:
                    assert conn.append("INBOX", None, None, raw)[0] == "OK"

        await asyncio.to_thread(burst)


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>")


def replies_to(smtp: SmtpCapture) -> list[str]:
    return [_bare(str(m.message["In-Reply-To"] or "")) for m in smtp.messages]


async def handled(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            stmt = select(func.count()).select_from(InboundMessage)
            return int(await conn.scalar(stmt.where(InboundMessage.handled_at.is_not(None))) or 0)
    finally:
        await engine.dispose()


async def until(check: Callable[[], object], timeout: float, what: str) -> float:
    """Wait until `check()` (sync or async) is true; the seconds it took."""
    began = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.2)


def _processed(dovecot: Dovecot) -> int:
    return dovecot.status_sync("Processed", "MESSAGES")


async def test_dovecot_down_for_30_seconds_the_poller_recovers_and_loses_nothing(
    fresh_pg_url: str,
    dovecot: Dovecot,
    smtp_capture: SmtpCapture,
    tmp_path: Path,
    fault_figures: Callable[[Figures], None],
) -> None:
    migrate(fresh_pg_url)
    worker = Worker(
        "poller", tmp_path, worker_env(fresh_pg_url, dovecot, smtp_capture, tmp_path), "both"
    )
    mails = Mails(dovecot)
    try:
        await mails.append(0, 120)  # waiting when the poller starts: read in chunks
        worker.start()
        await until(lambda: handled(fresh_pg_url), 60, f"no mail handled:\n{worker.log_tail()}")
        dovecot.stop()  # while the batch is being read
        at_stop = await handled(fresh_pg_url)
        await asyncio.sleep(OUTAGE_SECONDS)
        failures = worker.said("mailbox poll failed")
        alive_through = worker.running
        dovecot.start()
        await mails.append(120, 130)
        recovered = await until(
            lambda: len(smtp_capture.messages) >= len(mails.sent),
            SETTLE_TIMEOUT,
            f"not every mail answered after the outage:\n{worker.log_tail()}",
        )
        await asyncio.sleep(2)  # anything handled twice would show by now
    finally:
        worker.close()
    figures, problems = await mail_ledger(
        "dovecot down 30 s",
        fresh_pg_url,
        mails.sent,
        mails.forms,
        replies_to(smtp_capture),
        _processed(dovecot),
    )
    figures.notes.update(
        {
            "handled at the stop": at_stop,
            "failed polls": failures,
            "seconds to all answered": round(recovered),
        }
    )
    fault_figures(figures)
    assert alive_through, f"the poller process died in the outage:\n{worker.log_tail()}"
    assert failures >= 1, "the poller never noticed the outage"
    assert worker.said("mailbox reachable again") >= 1
    assert problems == [], report(problems)
    assert figures.sent == figures.stored == figures.answered == 130
    assert (figures.duplicated, figures.lost) == (0, 0)


async def test_two_pollers_one_killed_the_other_takes_over_and_nothing_is_handled_twice(
    fresh_pg_url: str,
    dovecot: Dovecot,
    smtp_capture: SmtpCapture,
    tmp_path: Path,
    fault_figures: Callable[[Figures], None],
) -> None:
    migrate(fresh_pg_url)
    env = worker_env(fresh_pg_url, dovecot, smtp_capture, tmp_path)
    first = Worker("poller-a", tmp_path, env, "poller")
    second = Worker("poller-b", tmp_path, env, "poller")
    sender = Worker("outbox", tmp_path, env, "outbox")  # the outbox in a role of its own
    mails = Mails(dovecot)
    try:
        sender.start()
        first.start()
        await until(lambda: first.said("polling mailbox"), 60, "the first poller did not poll")
        second.start()
        await until(lambda: second.said("standing by"), 60, "the second did not stand by")
        holds_before = [first.metric(HOLDS), second.metric(HOLDS)]
        await mails.append(0, 60)
        await until(lambda: handled(fresh_pg_url), 60, "no mail handled")
        first.kill9()  # in the middle of the batch
        at_kill = await handled(fresh_pg_url)
        takeover = await until(
            lambda: second.said("polling mailbox"),
            TAKEOVER_LIMIT,
            f"the standby did not take over:\n{second.log_tail()}",
        )
        holds_after = second.metric(HOLDS)
        await mails.append(60, 70)
        await until(
            lambda: len(smtp_capture.messages) >= len(mails.sent),
            SETTLE_TIMEOUT,
            f"not every mail answered after the takeover:\n{second.log_tail()}",
        )
        await asyncio.sleep(2)
        second_polled_before = second.said("polling mailbox")
    finally:
        for worker in (first, second, sender):
            worker.close()
    figures, problems = await mail_ledger(
        "two pollers, the holder killed",
        fresh_pg_url,
        mails.sent,
        mails.forms,
        replies_to(smtp_capture),
        _processed(dovecot),
    )
    figures.notes.update(
        {"handled at the kill": at_kill, "seconds to takeover": round(takeover, 1)}
    )
    fault_figures(figures)
    assert second_polled_before == 1
    assert holds_before == [1.0, 0.0] and holds_after == 1.0, "citygate_poller_holds_lock"
    assert problems == [], report(problems)
    assert figures.sent == figures.stored == figures.answered == 70
    assert (figures.duplicated, figures.lost) == (0, 0)
