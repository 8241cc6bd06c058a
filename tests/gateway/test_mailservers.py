"""The mail-server fixtures themselves: a real Dovecot and the in-process SMTP capture."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aioimaplib
import aiosmtplib
import pytest

from tests.mailservers import Dovecot, SmtpCapture


def mail(subject: str, body: str = "Salam, the street light is broken.\n") -> bytes:
    return (
        f"From: Citizen <citizen@example.org>\r\n"
        f"To: desk@city.example\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\n"
        f"\r\n{body}"
    ).encode()


async def test_append_and_read_back(dovecot: Dovecot) -> None:
    first = await dovecot.append(mail("first"))
    second = await dovecot.append(mail("second", "line one\nline two\n"))
    assert await dovecot.count() == 2
    assert await dovecot.uids() == [first, second]
    messages = await dovecot.fetch_all()
    assert [b"Subject: first" in m for m in messages] == [True, False]
    assert b"Subject: second" in messages[1]
    assert messages[1].endswith(b"line one\r\nline two\r\n")
    assert await dovecot.flags() == {first: set(), second: set()}


async def test_processed_and_failed_exist(dovecot: Dovecot) -> None:
    assert {"INBOX", "Processed", "Failed"} <= set(await dovecot.mailboxes())
    assert await dovecot.count("Processed") == 0
    assert await dovecot.count("Failed") == 0
    uid = await dovecot.append(mail("moved"), mailbox="Processed", flags="\\Seen")
    assert await dovecot.uids("Processed") == [uid]
    assert await dovecot.flags("Processed") == {uid: {"\\Seen"}}
    assert await dovecot.count("INBOX") == 0


async def test_uids_increase(dovecot: Dovecot) -> None:
    uids = [await dovecot.append(mail(f"n{i}")) for i in range(4)]
    assert uids == sorted(uids) and len(set(uids)) == 4
    assert await dovecot.uids() == uids


async def test_stop_and_start_keep_the_mail(dovecot: Dovecot) -> None:
    uid = await dovecot.append(mail("kept"))
    validity = await dovecot.uidvalidity()
    port = dovecot.port
    dovecot.stop()
    assert not dovecot.running
    with pytest.raises(OSError):
        await dovecot.count()
    dovecot.start()
    assert dovecot.port == port
    assert await dovecot.uids() == [uid]
    assert await dovecot.uidvalidity() == validity
    dovecot.restart()
    assert b"Subject: kept" in (await dovecot.fetch_all())[0]
    assert await dovecot.append(mail("after")) > uid


async def test_recreate_inbox_changes_uidvalidity(dovecot: Dovecot) -> None:
    first = await dovecot.append(mail("old one"))
    await dovecot.append(mail("old two"))
    kept = await dovecot.append(mail("processed"), mailbox="Processed")
    old = await dovecot.uidvalidity()
    processed_validity = await dovecot.uidvalidity("Processed")
    new = await dovecot.recreate_inbox()
    assert new != old
    assert await dovecot.uidvalidity() == new
    assert await dovecot.count() == 0
    assert await dovecot.uids("Processed") == [kept]
    assert await dovecot.uidvalidity("Processed") == processed_validity
    # UIDs start again: the same number now means another message.
    assert await dovecot.append(mail("new one")) == first
    assert b"new one" in (await dovecot.fetch_all())[0]


async def test_aioimaplib_idle_sees_new_mail(dovecot: Dovecot) -> None:
    client = aioimaplib.IMAP4(host=dovecot.host, port=dovecot.port, timeout=10)
    await client.wait_hello_from_server()
    assert (await client.login(dovecot.user, dovecot.password)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    idle = await client.idle_start(timeout=10)
    await dovecot.append(mail("pushed"))

    async def exists() -> None:
        while True:
            pushed = await client.wait_server_push()
            if any(b"EXISTS" in line for line in pushed if isinstance(line, bytes)):
                return

    await asyncio.wait_for(exists(), 10)
    client.idle_done()
    await asyncio.wait_for(idle, 10)
    await client.logout()


async def test_wrong_password_is_refused(dovecot: Dovecot) -> None:
    client = aioimaplib.IMAP4(host=dovecot.host, port=dovecot.port, timeout=10)
    await client.wait_hello_from_server()
    assert (await client.login(dovecot.user, "wrong")).result == "NO"
    await client.logout()


def outgoing(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "noreply@city.example"
    message["To"] = "citizen@example.org"
    message["Subject"] = subject
    message.set_content("کد پیگیری شما: 1234\n")
    return message


async def test_smtp_capture_receives(smtp_capture: SmtpCapture) -> None:
    await aiosmtplib.send(
        outgoing("Case received"), hostname=smtp_capture.host, port=smtp_capture.port
    )
    (got,) = await smtp_capture.wait_for(1)
    mail_from, rcpt_tos, raw, message = got
    assert mail_from == "noreply@city.example"
    assert rcpt_tos == ["citizen@example.org"]
    assert b"Subject: Case received" in raw
    assert message["Subject"] == "Case received"
    assert message.get_content() == "کد پیگیری شما: 1234\n"


async def test_smtp_capture_refuses_then_accepts(smtp_capture: SmtpCapture) -> None:
    smtp_capture.refuse = True
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await aiosmtplib.send(
            outgoing("Retry me"), hostname=smtp_capture.host, port=smtp_capture.port
        )
    assert refused.value.code == 451
    assert smtp_capture.messages == [] and smtp_capture.refused == 1
    smtp_capture.refuse = False
    await aiosmtplib.send(outgoing("Retry me"), hostname=smtp_capture.host, port=smtp_capture.port)
    (got,) = await smtp_capture.wait_for(1)
    assert got.message["Subject"] == "Retry me"
    with pytest.raises(TimeoutError):
        await smtp_capture.wait_for(2, timeout=0.2)


async def test_smtp_capture_with_auth() -> None:
    with SmtpCapture(user="gateway", password="s3cret") as capture:
        with pytest.raises(aiosmtplib.SMTPResponseException):
            await aiosmtplib.send(outgoing("No auth"), hostname=capture.host, port=capture.port)
        await aiosmtplib.send(
            outgoing("Auth"),
            hostname=capture.host,
            port=capture.port,
            username="gateway",
            password="s3cret",
            start_tls=False,
            use_tls=False,
        )
        (got,) = await capture.wait_for(1)
        assert got.message["Subject"] == "Auth"


def test_start_time_is_short(dovecot: Dovecot) -> None:
    assert dovecot.running
    assert dovecot.start_seconds < 5, dovecot.start_seconds
    dovecot.restart()
    assert dovecot.start_seconds < 5, dovecot.start_seconds
