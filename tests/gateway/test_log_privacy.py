"""What the logs may hold: never a secret, a full phone number or email address, a PIN
or a national ID (`parsers.addresses.mask` shortens addresses for logs).

Realistic traffic goes through the real paths (the signed Twilio webhook with HELP,
STATUS and a whole form, a forged signature, a mail fetched from a real Dovecot by the
poller, replies sent to a real SMTP server with AUTH and to the Twilio stand-in, the
operator API, the admin pages, `citygate simulate`, a handler that fails inside the
database) while every logger records at DEBUG; then each record's message, exception
text and stack are searched for every sensitive value, also percent-decoded. The access
log of the server as `citygate serve` runs it (`gateway.access_log`) is checked in-process too.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import gateway.pipeline
from gateway.access_log import ACCESS_LOGGER
from gateway.app import create_app
from gateway.email_poller import poll_once
from gateway.outbox import deliver_due
from gateway.settings import CityConfig, Settings
from models.cases import PINS, hash_pin
from parsers import tracking
from parsers.normalize import fold_digits
from tests.mailservers import Dovecot, SmtpCapture
from tests.support import (
    ADMIN_TOKEN,
    AUTH_TOKEN,
    DESK,
    ROOT,
    Twilio,
    mail_server_settings,
    make_settings,
    served,
    sms_params,
)
from tests.twilio_standin import TwilioStandIn

PHONE = "+989127654329"
OTHER_PHONE = "+989351112234"
WALK_IN_PHONE = "+989194441122"
EMAIL = "maryam.rezaei@example.org"
WALK_IN_EMAIL = "ali.karimi@example.net"
NATIONAL_ID = "0012345679"
PIN = "7319"
SESSION_SECRET = "session-secret-6d1f0c9a4be27e55"
SMTP_USER = "desk-smtp"
SMTP_PASSWORD = "smtp-password-93b1c4d7e2"
BEARER = {"authorization": f"Bearer {ADMIN_TOKEN}"}
FIELDS = {"postal_code": "1435678911", "district": "6", "plate_number": "12", "intended_use": "1"}


def _digits_pattern(digits: str, *, alone: bool = True) -> re.Pattern[str]:
    """The digits in a row, with any spaces, dashes, dots or brackets between them;
    `alone`: not inside a longer run of digits."""
    pattern = r"[\s\-.()]*".join(digits)
    return re.compile(rf"(?<!\d){pattern}(?!\d)" if alone else pattern)


def leaks(text_: str, secrets: list[str]) -> list[str]:
    """The sensitive values found in `text_` (as written, percent-decoded, and with
    Persian digits folded). A phone number is found by its last ten digits, in any
    grouping: every written form of it (E.164, 0912…, 0098…) holds them."""
    found = []
    for variant in {text_, unquote_plus(text_), fold_digits(unquote_plus(text_))}:
        lowered = variant.lower()
        for phone in (PHONE, OTHER_PHONE, WALK_IN_PHONE):
            if _digits_pattern(phone[-10:], alone=False).search(variant):
                found.append(phone)
        for digits in (NATIONAL_ID, PIN):
            if _digits_pattern(digits).search(variant):
                found.append(digits)
        found += [s for s in (EMAIL, WALK_IN_EMAIL) if s in lowered]
        found += [s for s in secrets if s in variant]
    return sorted(set(found))


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write of a record: message, exception, stack."""
    formatter = logging.Formatter()
    parts = [record.getMessage()]
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


# Third-party loggers that trace a protocol's traffic at DEBUG: the SQLite driver (each
# statement with its parameters), SQLAlchemy's result rows, the IMAP client (the
# conversation, mail included). Nothing the gateway runs logs at DEBUG (`citygate
# serve` runs at INFO, SQLAlchemy at WARNING); their records at INFO and above are
# checked like every other.
WIRE_TRACES = ("aiosqlite", "sqlalchemy.engine", "aioimaplib")
# Not the gateway's logs: the test's own HTTP client, the SMTP server standing in for
# the city's.
TEST_SIDE = ("httpx", "httpcore", "mail.log")


def leaked(records: list[logging.LogRecord], secrets: list[str]) -> list[str]:
    found = []
    for record in records:
        wire = record.name.startswith(WIRE_TRACES)
        if (wire and record.levelno < logging.INFO) or record.name.startswith(TEST_SIDE):
            continue
        hits = leaks(record_text(record), secrets)
        if hits:
            found.append(f"{record.name} {record.levelname}: {hits}: {record_text(record)[:300]}")
    return found


def assert_clean(records: list[logging.LogRecord], secrets: list[str]) -> None:
    found = leaked(records, secrets)
    assert not found, "\n".join(found)


@pytest.fixture
def smtp_auth() -> Iterator[SmtpCapture]:
    """An SMTP server that requires AUTH, so the password is used."""
    capture = SmtpCapture(user=SMTP_USER, password=SMTP_PASSWORD)
    capture.start()
    try:
        yield capture
    finally:
        capture.stop()


@pytest.fixture
def settings(
    database_url: str,
    twilio_api: TwilioStandIn,
    smtp_auth: SmtpCapture,
    dovecot: Dovecot,
    tmp_path: Path,
) -> Settings:
    return make_settings(
        database_url,
        **twilio_api.settings(),
        **mail_server_settings(dovecot, smtp_auth),
        smtp_user=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        data_dir=tmp_path,
        secret_key=SESSION_SECRET,
    )


@pytest.fixture
def everything_at_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, those with a level of their own too. (A logger that does
    not propagate, uvicorn's access log, needs caplog's handler itself: see `served`.)"""
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level:
            caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def all_secrets(dovecot: Dovecot) -> list[str]:
    """The Twilio auth token, the operator token, the key sessions and Message-ID tokens
    are signed with, the SMTP and IMAP passwords."""
    return [AUTH_TOKEN, ADMIN_TOKEN, SESSION_SECRET, SMTP_PASSWORD, dovecot.password]


async def sms_form(twilio: Twilio) -> str:
    """Service 1 by SMS (national ID, postal code, district, a contact mobile); the code."""
    assert "(1/5)" in await twilio.sms("NEW 1", sender=PHONE)
    for answer in (NATIONAL_ID, "1435678911", "6", "SKIP", OTHER_PHONE):
        await twilio.sms(answer, sender=PHONE)
    created = fold_digits(await twilio.sms("YES", sender=PHONE))
    assert PIN in created, created
    code = re.search(r"\d{4} \d{4} \d{4}", created)
    assert code is not None and tracking.is_valid(code[0])
    return code[0].replace(" ", "")


def form_mail() -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Maryam Rezaei <{EMAIL}>"
    message["To"] = DESK
    message["Subject"] = "NEW 1"
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content(
        f"Service: 1\nOwner's national ID: {NATIONAL_ID}\nProperty postal code: 1435678911\n"
        f"Municipal district: 6\nContact mobile: {WALK_IN_PHONE}\n"
    )
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="p.pdf")
    return message


async def admin_session(client: httpx.AsyncClient) -> str:
    """A wrong token, then the right one; the session's CSRF token (`client` on https:
    the session cookie is Secure when the public URL is)."""
    page = await client.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    wrong = await client.post("/admin/login", data={"csrf": csrf[1], "token": "x" * 24})
    assert wrong.status_code == 401
    csrf = re.search(r'name="csrf" value="([^"]+)"', wrong.text)
    assert csrf is not None
    right = await client.post("/admin/login", data={"csrf": csrf[1], "token": ADMIN_TOKEN})
    assert right.status_code == 303
    cases = await client.get("/admin/cases", params={"q": PHONE})
    assert cases.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', cases.text)
    assert found is not None
    return found[1]


def simulate(settings: Settings, *args: str) -> str:
    """`citygate simulate` in this process (in a thread: it runs its own event loop)."""
    from gateway.cli import app as cli

    env = {
        "CITYGATE_CONFIG": str(ROOT / "config.yaml"),
        "CITYGATE_DATABASE_URL": settings.database_url,
        "CITYGATE_DATA_DIR": str(settings.data_dir),
        "CITYGATE_SECRET_KEY": SESSION_SECRET,
        "CITYGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    result = CliRunner().invoke(cli, ["simulate", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def test_a_day_of_traffic_leaves_nothing_sensitive_in_any_log(
    app: Any,
    client: httpx.AsyncClient,
    twilio: Twilio,
    twilio_api: TwilioStandIn,
    dovecot: Dovecot,
    smtp_auth: SmtpCapture,
    settings: Settings,
    everything_at_debug: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(PINS, "take", lambda: (PIN, hash_pin(PIN)))
    runtime = app.state.runtime
    # SMS: help, a whole form with a national ID, status by the owner and by PIN
    assert "STATUS" in await twilio.sms("HELP", sender=PHONE)
    code = await sms_form(twilio)
    await twilio.sms(f"STATUS {code}", sender=PHONE)
    assert "No request" not in await twilio.sms(f"STATUS {code} {PIN}", sender=OTHER_PHONE)
    await twilio.sms(f"وضعیت {code} ۰۰۰۰", sender=OTHER_PHONE)
    forged = await twilio.post(sms_params(f"STATUS {code} {PIN}", sender=PHONE), signature="x")
    assert forged.status_code == 403
    # email: a form with an attachment, fetched by the poller, answered over SMTP AUTH
    await dovecot.append(form_mail().as_bytes())
    polled = await poll_once(runtime)
    assert (polled.handled, polled.failed) == (1, 0)
    # the operator API: a walk-in case, a status change (a notification), lookups
    walk_in = await client.post(
        "/api/v1/cases",
        json={"service": "land_use_inquiry", "email": WALK_IN_EMAIL, "fields": FIELDS},
        headers=BEARER,
    )
    assert walk_in.status_code == 201
    changed = await client.patch(
        f"/api/v1/cases/{code}", json={"status": "in_review", "note": "بررسی"}, headers=BEARER
    )
    assert changed.status_code == 200
    looked_up = await client.get(
        "/api/v1/messages", params={"phone": PHONE, "email": EMAIL}, headers=BEARER
    )
    assert looked_up.status_code == 200 and looked_up.json()
    listed = await client.get("/api/v1/cases", params={"q": PHONE}, headers=BEARER)
    assert listed.status_code == 200
    refused = await client.get("/api/v1/cases", headers={"authorization": "Bearer " + "y" * 20})
    assert refused.status_code == 401
    # the admin pages: sign-in, a status change with a public note
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 44321))
    async with httpx.AsyncClient(transport=transport, base_url=settings.public_url or "") as web:
        csrf = await admin_session(web)
        moved = await web.post(
            f"/admin/cases/{walk_in.json()['code']}",
            data={"csrf": csrf, "status": "approved", "note": "ok"},
        )
    assert moved.status_code == 303
    # the outbox: SMS through the Twilio stand-in (signed callbacks), mail over SMTP AUTH
    delivery = await deliver_due(runtime)
    assert delivery.sent == 3 and delivery.dead == 0, delivery
    assert len(smtp_auth.messages) == 2 and len(twilio_api.sent) == 1
    for url, params in twilio_api.callbacks:
        response = await twilio.post(params, url.removeprefix(settings.public_url or ""))
        assert response.status_code == 204
    # `citygate simulate`, both channels
    shown = await asyncio.to_thread(simulate, settings, "--from", PHONE, f"STATUS {code}")
    assert "No request" not in shown and "Updated" in shown
    await asyncio.to_thread(simulate, settings, "--channel", "email", "--from", EMAIL, "HELP")

    records = everything_at_debug.records
    assert any(r.name == "citygate.pipeline" for r in records)
    assert any(r.name == "citygate.outbox" for r in records)
    assert_clean(records, all_secrets(dovecot))


async def test_a_handler_failing_in_the_database_logs_no_address(
    app: Any,
    twilio: Twilio,
    settings: Settings,
    dovecot: Dovecot,
    everything_at_debug: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug that makes a statement fail: its traceback and the group's warning name the
    statement, never its parameters (the engine hides them)."""

    async def broken(command: Any, ctx: Any) -> Any:
        statement = text("SELECT no_such_column FROM contacts WHERE address = :a")
        await ctx.session.execute(statement, {"a": ctx.contact.address})

    monkeypatch.setattr(gateway.pipeline, "dispatch", broken)
    replies = await asyncio.gather(
        twilio.sms("HELP", sender=PHONE), twilio.sms("HELP", sender=OTHER_PHONE)
    )
    assert all(replies)
    records = everything_at_debug.records
    failures = [r for r in records if r.name == "citygate.pipeline" and r.exc_info]
    assert len(failures) == 2
    assert "no_such_column" in record_text(failures[0])
    assert_clean(records, all_secrets(dovecot))


# ------------------------------------------------------------ the served access log


@pytest.fixture
async def served_app(
    settings: Settings, city_config: CityConfig, everything_at_debug: pytest.LogCaptureFixture
) -> AsyncIterator[str]:
    """The app served as `citygate serve` serves it (`tests.support.served`); its base URL."""
    access = logging.getLogger(ACCESS_LOGGER)  # the serving set-up stops it propagating
    async with served(lambda: create_app(settings, city_config)) as url:
        access.addHandler(everything_at_debug.handler)  # after that set-up: it resets handlers
        try:
            yield url
        finally:
            access.removeHandler(everything_at_debug.handler)


async def test_the_served_access_log_masks_addresses_in_query_strings(
    served_app: str,
    settings: Settings,
    dovecot: Dovecot,
    everything_at_debug: pytest.LogCaptureFixture,
) -> None:
    async with httpx.AsyncClient(base_url=served_app, headers=BEARER) as http:
        for params in ({"phone": PHONE, "email": EMAIL}, {"phone": "09127654329"}):
            response = await http.get("/api/v1/messages", params=params)
            assert response.status_code == 200
        assert (await http.get("/api/v1/cases", params={"q": PHONE[3:]})).status_code == 200
        assert (await http.get(f"/api/v1/cases?q={WALK_IN_EMAIL}")).status_code == 200
        assert (await http.get("/admin/cases", params={"q": "۰۹۱۲۷۶۵۴۳۲۹"})).status_code == 303
    access = [r for r in everything_at_debug.records if r.name == ACCESS_LOGGER]
    assert len(access) == 5
    assert all("/api/v1/messages?" in r.getMessage() or "?q=" in r.getMessage() for r in access)
    assert_clean(everything_at_debug.records, all_secrets(dovecot))
