"""The mailbox read in chunks and the replies sent over one SMTP connection, against Dovecot
and aiosmtpd: many citizens at once, each answered exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway import email_channel as channel
from gateway.email_poller import poll_once
from gateway.outbox import deliver_due
from gateway.runtime import Runtime
from models.base import utcnow
from models.messages import InboundMessage, OutboundMessage
from tests.gateway.test_email import count, cycle, mail
from tests.gateway.test_email import runtime as runtime  # the fixture
from tests.mailservers import Dovecot, SmtpCapture


def citizen(n: int) -> str:
    return f"citizen{n}@example.org"


async def test_a_full_mailbox_is_answered_once_each_over_one_smtp_connection(
    runtime: Runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
):
    runtime.settings = runtime.settings.model_copy(update={"imap_chunk": 4})
    for n in range(10):
        await dovecot.append(mail("HELP", subject="HELP", sender=citizen(n)).as_bytes())

    result = await poll_once(runtime)
    assert (result.fetched, result.handled, result.failed, result.duplicates) == (10, 10, 0, 0)
    assert await dovecot.count("INBOX") == 0
    assert await dovecot.count("Processed") == 10

    delivery = await deliver_due(runtime)
    assert delivery.sent == 10
    assert sorted(m.rcpt_tos[0] for m in smtp_capture.messages) == sorted(
        citizen(n) for n in range(10)
    )
    assert len(smtp_capture.peers) == 1, "every reply of a pass shares one SMTP connection"

    again, delivery = await cycle(runtime)
    assert again.fetched == 0 and delivery.sent == 0
    assert await count(runtime, InboundMessage) == 10
    assert await count(runtime, OutboundMessage) == 10


async def test_a_broken_mail_in_a_chunk_costs_only_itself(
    runtime: Runtime, dovecot: Dovecot, smtp_capture: SmtpCapture, monkeypatch: pytest.MonkeyPatch
):
    real = channel.parse_email

    def fragile(raw: bytes, **kwargs):
        if b"BREAK-THE-PARSER" in raw:
            raise ValueError("simulated parser failure")
        return real(raw, **kwargs)

    monkeypatch.setattr(channel, "parse_email", fragile)
    for n in range(3):
        await dovecot.append(mail("HELP", subject="HELP", sender=citizen(n)).as_bytes())
    await dovecot.append(mail("BREAK-THE-PARSER", subject="x", sender=citizen(3)).as_bytes())
    for n in range(4, 6):
        await dovecot.append(mail("HELP", subject="HELP", sender=citizen(n)).as_bytes())

    result, delivery = await cycle(runtime)
    assert (result.fetched, result.handled, result.failed) == (6, 5, 1)
    assert await dovecot.count("Failed") == 1
    assert await dovecot.count("Processed") == 5
    assert delivery.sent == 5
    assert citizen(3) not in {m.rcpt_tos[0] for m in smtp_capture.messages}
    assert await count(runtime, InboundMessage, InboundMessage.outcome == "failed") == 1


async def test_an_smtp_connection_lost_mid_pass_is_opened_again(
    runtime: Runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
):
    for n in range(4):
        await dovecot.append(mail("HELP", subject="HELP", sender=citizen(n)).as_bytes())
    await poll_once(runtime)
    smtp_capture.refuse = True  # 451 to DATA: the link is closed and the row retried later
    delivery = await deliver_due(runtime)
    assert delivery.retried == 4 and delivery.sent == 0
    assert smtp_capture.refused == 4

    smtp_capture.refuse = False
    later = utcnow() + timedelta(hours=7)  # past every retry's backoff
    runtime.clock = lambda: later
    delivery = await deliver_due(runtime)
    assert delivery.sent == 4
    assert len(smtp_capture.messages) == 4
    assert len(smtp_capture.peers) == 1


async def test_a_mail_loop_inside_one_chunk_stops_at_the_cap(
    runtime: Runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
):
    """The caps are counted in memory for a group (read ahead, then one more for each
    reply queued): six mails from one address in one chunk get three replies."""
    runtime.settings = runtime.settings.model_copy(
        update={"mail_reply_cap_10min": 3, "imap_chunk": 32}
    )
    for n in range(6):
        await dovecot.append(mail(f"HELP {n}", subject="HELP", sender=citizen(1)).as_bytes())
    await dovecot.append(mail("HELP", subject="HELP", sender=citizen(2)).as_bytes())
    result, delivery = await cycle(runtime)
    assert (result.fetched, result.handled) == (7, 7)
    assert delivery.sent == 4
    assert sorted(m.rcpt_tos[0] for m in smtp_capture.messages) == [citizen(1)] * 3 + [citizen(2)]
    suppressed = OutboundMessage.to_address == citizen(1)
    assert await count(runtime, OutboundMessage, suppressed) == 3
    capped = InboundMessage.outcome.like("%suppressed by the per-address cap")
    assert await count(runtime, InboundMessage, capped) == 3

    # the next pass reads the three replies already queued: none more for this address
    await dovecot.append(mail("HELP again", subject="HELP", sender=citizen(1)).as_bytes())
    _result, delivery = await cycle(runtime)
    assert delivery.sent == 0
    assert await count(runtime, InboundMessage, capped) == 4


async def test_a_chunk_s_replies_are_one_insert_and_a_filed_case_is_not_read_back(
    runtime: Runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
):
    from tests.gateway.test_email import LAND_USE_FA, code_of
    from tests.support import statements

    runtime.settings = runtime.settings.model_copy(update={"imap_chunk": 32})
    for n in range(5):
        await dovecot.append(mail("HELP", subject="HELP", sender=citizen(n)).as_bytes())
    await dovecot.append(mail(LAND_USE_FA, sender=citizen(9)).as_bytes())
    with statements(runtime.engine) as seen:
        result = await poll_once(runtime)
    assert result.handled == 6
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT INTO OUTBOUND_MESSAGES")]
    assert len(inserts) == 1, inserts
    case_reads = [s for s in seen if s.lstrip().upper().startswith("SELECT CASES")]
    assert case_reads == [], "a case just filed was read back"
    assert (await deliver_due(runtime)).sent == 6
    filed = next(m for m in smtp_capture.messages if m.rcpt_tos[0] == citizen(9))
    code = code_of(filed.message.get_body(("plain",)).get_content())
    assert f"[CG-{code}]" in str(filed.message["Subject"])
