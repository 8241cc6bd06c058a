"""The email loop against a real Dovecot and a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import func, select

from gateway.email_poller import poll_once
from gateway.outbox import deliver_due
from gateway.runtime import Runtime
from models.cases import Case
from models.contacts import Contact
from models.mail import StoredAttachment
from models.messages import InboundMessage, OutboundMessage
from parsers import tracking
from parsers.normalize import fold_digits
from tests.mailservers import Dovecot, SmtpCapture
from tests.support import DESK, as_environment, mail_server_settings, make_settings

CITIZEN = "maryam@example.org"
LAND_USE_FA = """سلام، لطفاً استعلام کاربری ثبت شود.

خدمت: ۶
کد پستی ملک: ۱۴۳۵۶-۷۸۹۱۱
منطقه شهرداری: ۶
پلاک ثبتی: ۱۲۳/۴۵
کاربری مورد نظر: مسکونی

با سپاس
"""


@pytest.fixture
async def runtime(database_url, city_config, dovecot: Dovecot, smtp_capture: SmtpCapture, tmp_path):
    settings = make_settings(
        database_url,
        **mail_server_settings(dovecot, smtp_capture),
        data_dir=tmp_path,
        secret_key="test-secret-key-for-tokens",
    )
    rt = Runtime.create(settings, city_config)
    yield rt
    await rt.close()


def mail(
    body: str,
    subject: str = "درخواست",
    sender: str = CITIZEN,
    *,
    headers: dict[str, str] | None = None,
    attachment: tuple[str, str, bytes] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"مریم <{sender}>"
    message["To"] = DESK
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    message["Date"] = "Sat, 28 Nov 2026 10:00:00 +0330"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if attachment:
        name, ctype, data = attachment
        maintype, subtype = ctype.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


async def cycle(runtime: Runtime):
    result = await poll_once(runtime)
    delivery = await deliver_due(runtime)
    return result, delivery


async def count(runtime: Runtime, model, *where) -> int:
    async with runtime.sessions() as session:
        stmt = select(func.count()).select_from(model)
        for clause in where:
            stmt = stmt.where(clause)
        return await session.scalar(stmt)


def code_of(text: str) -> str:
    import re

    for grouped in re.findall(r"\d{4} \d{4} \d{4}", fold_digits(text)):
        if tracking.is_valid(grouped):
            return grouped.replace(" ", "")
    raise AssertionError(text)


async def test_persian_form_with_attachment_becomes_a_threaded_case(
    runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
):
    sent = mail(LAND_USE_FA, attachment=("نقشه.pdf", "application/pdf", b"%PDF-1.4 plan"))
    await dovecot.append(sent.as_bytes())
    result, delivery = await cycle(runtime)
    assert (result.fetched, result.handled, result.failed) == (1, 1, 0)
    assert delivery.sent == 1
    assert await dovecot.count("INBOX") == 0
    assert await dovecot.count("Processed") == 1

    reply = smtp_capture.messages[0].message
    assert reply["In-Reply-To"] == sent["Message-ID"]
    assert sent["Message-ID"] in reply["References"]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["From"] == DESK
    assert smtp_capture.messages[0].rcpt_tos == [CITIZEN]
    assert smtp_capture.messages[0].mail_from == DESK  # the envelope sender too
    assert reply["Message-ID"].startswith("<cg.")
    text = reply.get_body(("plain",)).get_content()
    html = reply.get_body(("html",)).get_content()
    assert 'dir="rtl"' in html
    code = code_of(text)
    assert f"[CG-{code}]" in reply["Subject"] and reply["Subject"].startswith("Re: ")

    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).unique().scalar_one()
        stored = (await session.execute(select(StoredAttachment))).scalar_one()
    assert case.code == code and case.channel == "email" and case.district == 6
    assert case.fields["intended_use"] == "residential"
    assert stored.case_id == case.id and stored.filename == "نقشه.pdf"
    assert (runtime.settings.data_dir / "attachments" / stored.sha256[:2] / stored.sha256).exists()


async def test_incomplete_form_then_the_completing_reply(
    runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
):
    first = mail("Service: 6\nPostal code: 1435678911\nDistrict: 6\n", subject="Land use")
    await dovecot.append(first.as_bytes())
    await cycle(runtime)
    problems = smtp_capture.messages[0].message
    body = problems.get_body(("plain",)).get_content()
    assert "not filed yet" in body
    assert "Registration plate" in body and "Intended use" in body
    assert "Postal code:" not in body.split("not filed yet")[1]
    assert await count(runtime, Case) == 0

    answer = mail(
        "Registration plate: 12/5\nIntended use: Commercial\n\n"
        f"On Sat, Nov 28, 2026, {DESK} wrote:\n> {body.splitlines()[0]}\n",
        subject="Re: " + problems["Subject"],
        headers={"In-Reply-To": problems["Message-ID"], "References": problems["Message-ID"]},
    )
    await dovecot.append(answer.as_bytes())
    await cycle(runtime)
    created = smtp_capture.messages[1].message.get_body(("plain",)).get_content()
    assert "Tracking code" in created
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).unique().scalar_one()
    assert case.fields["plate_number"] == "12/5"
    assert case.fields["intended_use"] == "commercial"
    assert case.fields["postal_code"] == "1435678911"


async def test_status_request_by_email_and_a_follow_up_joins_the_case(
    runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
):
    await dovecot.append(mail(LAND_USE_FA).as_bytes())
    await cycle(runtime)
    code = code_of(smtp_capture.messages[0].message.get_body(("plain",)).get_content())
    await dovecot.append(mail("", subject=f"وضعیت {code}").as_bytes())
    await cycle(runtime)
    status = smtp_capture.messages[1].message.get_body(("plain",)).get_content()
    assert "دریافت شد" in status and "استعلام کاربری ملک" in status

    created = smtp_capture.messages[0].message
    follow = mail(
        "نقشه اصلاحی را هم فرستادم.",
        subject="Re: " + created["Subject"],
        headers={"In-Reply-To": created["Message-ID"]},
    )
    await dovecot.append(follow.as_bytes())
    await cycle(runtime)
    added = smtp_capture.messages[2].message.get_body(("plain",)).get_content()
    assert "افزوده شد" in added
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).unique().scalar_one()
    assert case.events[-1].kind == "message"
    assert "نقشه اصلاحی" in case.events[-1].note


@pytest.mark.parametrize(
    "headers, sender",
    [
        ({"Auto-Submitted": "auto-replied"}, CITIZEN),
        ({"X-Autoreply": "yes"}, CITIZEN),
        ({"Precedence": "list", "List-Id": "<city.lists.example>"}, CITIZEN),
        ({}, "MAILER-DAEMON@mx.example.org"),
        ({}, DESK),
    ],
)
async def test_automatic_mail_gets_no_answer(
    runtime, dovecot: Dovecot, smtp_capture: SmtpCapture, headers, sender
):
    await dovecot.append(mail("HELP", subject="HELP", sender=sender, headers=headers).as_bytes())
    result, delivery = await cycle(runtime)
    assert result.handled == 1 and delivery.sent == 0
    assert smtp_capture.messages == []
    assert await dovecot.count("Processed") == 1
    assert await count(runtime, InboundMessage, InboundMessage.outcome.like("ignored:%")) == 1


async def test_bounce_is_recorded_against_the_address(runtime, dovecot: Dovecot, smtp_capture):
    await dovecot.append(mail("HELP", subject="HELP").as_bytes())
    await cycle(runtime)
    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        f"To: {DESK}\r\nSubject: Undelivered Mail\r\nMessage-ID: <dsn1@mx.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; {CITIZEN}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n--B--\r\n"
    )
    await dovecot.append(dsn.encode())
    await cycle(runtime)
    assert len(smtp_capture.messages) == 1
    async with runtime.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.bounces == 1 and contact.bounced_at is not None


async def test_same_message_twice_makes_one_case(runtime, dovecot: Dovecot, smtp_capture):
    raw = mail(LAND_USE_FA).as_bytes()
    await dovecot.append(raw)
    await dovecot.append(raw)
    result, _ = await cycle(runtime)
    assert result.fetched == 2 and result.duplicates == 1
    assert await count(runtime, Case) == 1
    assert len(smtp_capture.messages) == 1
    assert await dovecot.count("Processed") == 2


async def test_broken_message_goes_to_failed_and_the_rest_are_handled(
    runtime, dovecot: Dovecot, smtp_capture, monkeypatch
):
    import gateway.email_channel as channel

    real = channel.parse_email

    def fragile(raw: bytes, **kwargs):
        if b"BREAK-THE-PARSER" in raw:
            raise ValueError("simulated parser failure")
        return real(raw, **kwargs)

    monkeypatch.setattr(channel, "parse_email", fragile)
    await dovecot.append(mail("BREAK-THE-PARSER", subject="x").as_bytes())
    await dovecot.append(mail("HELP", subject="HELP").as_bytes())
    result, delivery = await cycle(runtime)
    assert (result.fetched, result.handled, result.failed) == (2, 1, 1)
    assert await dovecot.count("Failed") == 1 and await dovecot.count("Processed") == 1
    assert delivery.sent == 1
    failed = await count(runtime, InboundMessage, InboundMessage.outcome == "failed")
    assert failed == 1
    import httpx

    from gateway.app import create_app
    from tests.support import ADMIN_TOKEN

    app = create_app(runtime.settings, runtime.config)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        listed = await client.get(
            "/api/v1/mail/failed", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        )
    await app.state.runtime.close()
    assert listed.status_code == 200
    assert "simulated parser failure" in listed.json()[0]["error"]


@pytest.mark.parametrize("chunk", [1, 3])
async def test_dovecot_stopped_during_a_poll_loses_and_doubles_nothing(
    runtime, dovecot: Dovecot, smtp_capture, monkeypatch, chunk: int
):
    """Chunk 1: Dovecot goes away after the first mail is handled and filed, before the
    next is fetched. Chunk 3: after all three are handled, before they are filed away,
    so the next poll reads all three again (the stored ones answer once)."""
    import gateway.email_poller as poller

    runtime.settings = runtime.settings.model_copy(update={"imap_chunk": chunk})
    for n in range(3):
        await dovecot.append(mail("HELP", subject=f"HELP {n}").as_bytes())
    real_move = poller._move
    moves = 0

    async def stop_at_a_move(client, uid, folder, timeout):
        nonlocal moves
        moves += 1
        if moves == (1 if chunk > 1 else 2):
            await asyncio.to_thread(dovecot.stop)
        return await real_move(client, uid, folder, timeout)

    monkeypatch.setattr(poller, "_move", stop_at_a_move)
    with pytest.raises(Exception):
        await poll_once(runtime)
    monkeypatch.setattr(poller, "_move", real_move)
    await asyncio.to_thread(dovecot.start)
    again = await poll_once(runtime)
    assert again.duplicates == (3 if chunk > 1 else 1)
    await deliver_due(runtime)
    assert await count(runtime, InboundMessage) == 3
    assert len(smtp_capture.messages) == 3
    assert await dovecot.count("INBOX") == 0
    assert await dovecot.count("Processed") == 3


async def test_uidvalidity_change_makes_no_duplicates(runtime, dovecot: Dovecot, smtp_capture):
    raws = [mail(LAND_USE_FA).as_bytes(), mail("HELP", subject="HELP").as_bytes()]
    for raw in raws:
        await dovecot.append(raw)
    await cycle(runtime)
    before = await dovecot.uidvalidity()
    assert await dovecot.recreate_inbox() != before
    for raw in raws:
        await dovecot.append(raw)
    result, _ = await cycle(runtime)
    assert result.fetched == 2 and result.duplicates == 2
    assert await count(runtime, Case) == 1
    assert len(smtp_capture.messages) == 2


async def test_first_start_from_now_skips_old_mail(runtime, dovecot: Dovecot, smtp_capture):
    await dovecot.append(mail("HELP", subject="old").as_bytes())
    runtime.settings = runtime.settings.model_copy(update={"imap_first_start": "new"})
    result, _ = await cycle(runtime)
    assert result.fetched == 0
    await dovecot.append(mail("HELP", subject="new").as_bytes())
    result, _ = await cycle(runtime)
    assert result.fetched == 1


async def test_reply_cap_per_address(runtime, dovecot: Dovecot, smtp_capture):
    for n in range(12):
        await dovecot.append(mail("HELP", subject=f"HELP {n}").as_bytes())
    result, delivery = await cycle(runtime)
    assert result.handled == 12
    assert delivery.sent == 10


async def test_header_injection_through_the_subject_is_impossible(
    runtime, dovecot: Dovecot, smtp_capture
):
    raw = (
        f"From: {CITIZEN}\r\nTo: {DESK}\r\nMessage-ID: <inj@example.org>\r\n"
        "Subject: =?utf-8?q?HELP=0D=0ABcc=3A_victim=40example=2Eorg?=\r\n\r\nHELP\r\n"
    ).encode()
    await dovecot.append(raw)
    await cycle(runtime)
    captured = smtp_capture.messages[0]
    assert captured.rcpt_tos == [CITIZEN]
    assert captured.message["Bcc"] is None
    assert "\n" not in captured.message["Subject"]


async def test_smtp_refusing_for_a_while_is_retried_then_delivered(
    runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
):
    from datetime import timedelta

    from models.base import utcnow

    smtp_capture.refuse = True
    await dovecot.append(mail("HELP", subject="HELP").as_bytes())
    _result, delivery = await cycle(runtime)
    assert delivery.retried == 1 and delivery.sent == 0
    async with runtime.sessions() as session:
        row = (await session.execute(select(OutboundMessage))).scalar_one()
    assert row.status == "pending" and "451" in (row.last_error or "")
    smtp_capture.refuse = False
    later = utcnow() + timedelta(hours=7)
    runtime.clock = lambda: later
    delivery = await deliver_due(runtime)
    assert delivery.sent == 1
    assert len(smtp_capture.messages) == 1


async def test_untrusted_sender_is_a_stranger_to_its_own_case(
    runtime, dovecot: Dovecot, smtp_capture
):
    await dovecot.append(mail(LAND_USE_FA).as_bytes())
    await cycle(runtime)
    code = code_of(smtp_capture.messages[0].message.get_body(("plain",)).get_content())
    runtime.settings = runtime.settings.model_copy(
        update={"mail_trusted_authserv_id": "mx.city.example"}
    )
    spoofed = mail(
        "",
        subject=f"STATUS {code}",
        headers={"Authentication-Results": "mx.city.example; spf=fail; dkim=none; dmarc=fail"},
    )
    await dovecot.append(spoofed.as_bytes())
    genuine = mail(
        "",
        subject=f"STATUS {code}",
        headers={"Authentication-Results": "mx.city.example; spf=pass; dkim=pass; dmarc=pass"},
    )
    await dovecot.append(genuine.as_bytes())
    await cycle(runtime)
    spoofed_reply = smtp_capture.messages[1].message.get_body(("plain",)).get_content()
    genuine_reply = smtp_capture.messages[2].message.get_body(("plain",)).get_content()
    assert "No request found" in spoofed_reply
    assert "Received" in genuine_reply


async def test_poller_uses_idle_and_handles_new_mail_promptly(
    runtime, dovecot: Dovecot, smtp_capture
):
    from gateway.app import start_workers

    runtime.settings = runtime.settings.model_copy(update={"imap_poll_seconds": 120.0})
    stop = asyncio.Event()
    tasks = start_workers(runtime, stop)
    assert {t.get_name() for t in tasks} == {"poller", "outbox"}
    try:
        await asyncio.sleep(1.0)
        await dovecot.append(mail("HELP", subject="HELP").as_bytes())
        await smtp_capture.wait_for(1, timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    assert await dovecot.count("Processed") == 1


def test_poll_email_once_from_the_command_line(dovecot: Dovecot, smtp_capture, tmp_path):
    import os
    import subprocess
    import sys

    from tests.support import ROOT

    dovecot.append_sync(mail("HELP", subject="HELP").as_bytes())
    env = {
        **os.environ,
        **as_environment(
            {
                "config": ROOT / "config.yaml",
                "database_url": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
                "data_dir": tmp_path,
                **mail_server_settings(dovecot, smtp_capture),
            }
        ),
    }
    result = subprocess.run(
        [sys.executable, "-c", "from gateway.cli import main; main()", "poll-email", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fetched 1, handled 1" in result.stdout and "replies sent 1" in result.stdout
    assert dovecot.status_sync("Processed", "MESSAGES") == 1
