"""Abuse limits (`handlers.limits`): a flood from one number is stored but not acted on,
with one clear answer; failed STATUS lookups lock lookups by code for a while; email
senders have their own limit; two processes count one sender together. SQLite and
PostgreSQL (the webhook suites), the bucket's arithmetic alone first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import func, select

from gateway.app import create_app
from gateway.email_channel import handle_email
from handlers.limits import (
    Admission,
    Bucket,
    Limits,
    admit,
    after_failed_lookup,
    lookups_blocked_for,
    minutes_until_admitted,
)
from models.cases import Case
from models.contacts import Contact
from models.messages import InboundMessage, OutboundMessage
from tests.gateway.test_api_cases import open_case
from tests.gateway.test_email import LAND_USE_FA
from tests.support import Twilio, make_settings, reply_messages, sms_params

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
FLOODER = "+989121110000"
OTHER = "+989122220000"


# ------------------------------------------------------------------ the arithmetic


def test_the_bucket_admits_a_burst_then_refuses_once_aloud_then_silently():
    bucket, limits, got = Bucket(), Limits(messages=3, window=600), []
    for _ in range(5):
        admission, bucket = admit(bucket, T0, limits)
        got.append(admission)
    assert got == [Admission.ADMIT] * 3 + [Admission.REFUSE_AND_SAY, Admission.REFUSE_SILENTLY]
    assert minutes_until_admitted(bucket, T0, limits) == 4  # one token: 200 s
    # one token back after 200 s, and the next refusal is announced again
    later = T0 + timedelta(seconds=201)
    admission, bucket = admit(bucket, later, limits)
    assert admission is Admission.ADMIT
    assert admit(bucket, later, limits)[0] is Admission.REFUSE_AND_SAY


def test_a_limit_of_zero_is_off():
    contact = Contact(channel="sms", address=FLOODER)
    off = Limits(messages=0, lookup_failures=0)
    bucket = Bucket()
    for _ in range(100):
        admission, bucket = admit(bucket, T0, off)
        assert admission is Admission.ADMIT
    for _ in range(100):
        contact.failed_lookups, contact.failed_lookups_at = after_failed_lookup(contact, T0, off)
    assert lookups_blocked_for(contact, T0, off) is None


def test_failed_lookups_lock_until_the_window_ends():
    contact = Contact(channel="sms", address=FLOODER, failed_lookups=0)
    limits = Limits(lookup_failures=3, lookup_window=3600)

    def fail(at: datetime) -> None:
        contact.failed_lookups, contact.failed_lookups_at = after_failed_lookup(contact, at, limits)

    for minute in range(3):
        assert lookups_blocked_for(contact, T0 + timedelta(minutes=minute), limits) is None
        fail(T0 + timedelta(minutes=minute))
    assert lookups_blocked_for(contact, T0 + timedelta(minutes=2), limits) == 58
    assert lookups_blocked_for(contact, T0 + timedelta(minutes=60), limits) is None
    fail(T0 + timedelta(minutes=61))  # a new window
    assert contact.failed_lookups == 1


# ------------------------------------------------------------------ through the webhook


@pytest.fixture
def settings(database_url):
    return make_settings(
        database_url,
        sms_limit_messages=3,
        sms_limit_seconds=600,
        lookup_limit_failures=3,
        lookup_limit_seconds=3600,
        mail_limit_messages=2,
        mail_limit_seconds=3600,
        mail_from="desk@city.example",
    )


async def _rows(app, sender: str) -> list[InboundMessage]:
    async with app.state.runtime.sessions() as session:
        stmt = select(InboundMessage).where(InboundMessage.from_address == sender)
        return list((await session.execute(stmt.order_by(InboundMessage.id))).scalars())


async def test_a_flood_is_stored_answered_once_then_silently_and_others_are_served(
    twilio: Twilio, app
):
    runtime = app.state.runtime
    runtime.clock = lambda: T0
    replies = [await twilio.messages("راهنما", FLOODER) for _ in range(5)]
    assert all(r for r in replies[:3])
    assert replies[3] == ["پیام‌های شما بیش از حد مجاز است. لطفاً ۴ دقیقه دیگر دوباره بفرستید."]
    assert replies[4] == []  # an empty <Response/>: nothing sent, nothing paid
    rows = await _rows(app, FLOODER)
    assert len(rows) == 5  # every message kept
    assert [r.outcome for r in rows] == ["handled"] * 3 + ["refused: rate limit"] * 2
    assert all(r.handled_at is not None for r in rows)
    assert await twilio.messages("HELP", OTHER)  # another number is not held back
    # STOP always goes through, even from a number over its limit
    await twilio.messages("STOP", FLOODER)
    async with runtime.sessions() as session:
        flooder = await session.scalar(select(Contact).where(Contact.address == FLOODER))
        assert flooder is not None and flooder.opted_out
    # the bucket refills: one message every 200 s
    runtime.clock = lambda: T0 + timedelta(seconds=400)
    assert "STATUS" in "".join(await twilio.messages("HELP", FLOODER))


async def test_failed_lookups_lock_status_by_code_but_not_own_cases(
    twilio: Twilio, app, client: httpx.AsyncClient, admin_headers
):
    runtime = app.state.runtime
    runtime.settings = runtime.settings.model_copy(update={"sms_limit_messages": 100})
    runtime.clock = lambda: T0
    case = await open_case(client, admin_headers, phone="09351112233")
    code, pin = case["code"], case["pin"]
    wrong = [await twilio.sms(f"وضعیت {code} {int(pin) ^ 1:04d}", FLOODER) for _ in range(3)]
    assert all("پیدا نشد" in r for r in wrong)  # a wrong PIN looks like no such code
    locked = await twilio.sms(f"وضعیت {code} {pin}", FLOODER)  # right PIN, too late
    assert locked == "جست‌وجوی ناموفق زیاد بود. لطفاً ۶۰ دقیقه دیگر دوباره بفرستید."
    assert code[:4] not in locked
    # the owner is not locked out by someone else's guessing
    owner = await twilio.sms(f"وضعیت {code}", "+989351112233")
    assert "پیدا نشد" not in owner and "جست‌وجوی ناموفق" not in owner
    runtime.clock = lambda: T0 + timedelta(minutes=61)
    assert "پیدا نشد" not in await twilio.sms(f"وضعیت {code} {pin}", FLOODER)


async def test_two_processes_count_one_sender_together(settings, city_config):
    """Two apps (as two processes) on one database, one sender's texts arriving at both
    at once: exactly the limit is handled."""
    apps = [create_app(settings, city_config) for _ in range(2)]
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://gw") for a in apps
    ]
    try:
        for a in apps:
            a.state.runtime.clock = lambda: T0
        twilios = [Twilio(c) for c in clients]
        sent = await asyncio.gather(
            *(twilios[i % 2].post(sms_params("HELP", FLOODER)) for i in range(10))
        )
        assert all(r.status_code == 200 for r in sent)
        answered = [reply_messages(r.text) for r in sent]
        assert sum("STATUS" in "".join(m) for m in answered) == 3
        assert sum(m == [] for m in answered) == 6
        rows = await _rows(apps[0], FLOODER)
        assert len(rows) == 10
        assert sum(r.outcome == "handled" for r in rows) == 3
    finally:
        for c in clients:
            await c.aclose()
        for a in apps:
            await a.state.runtime.close()


# ------------------------------------------------------------------ email


def _mail(n: int, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = "flood@example.org"
    message["To"] = "desk@city.example"
    message["Subject"] = f"request {n}"
    message["Message-ID"] = f"<flood-{n}@example.org>"
    message.set_content(body)
    return message.as_bytes()


async def test_an_email_flood_is_kept_but_not_acted_on(app, tmp_path):
    runtime = app.state.runtime
    runtime.settings = runtime.settings.model_copy(update={"data_dir": tmp_path})
    runtime.clock = lambda: T0
    form = LAND_USE_FA
    outcomes = [
        await handle_email(runtime, _mail(n, "HELP"), fallback_id=f"f{n}") for n in range(2)
    ]
    third = await handle_email(runtime, _mail(2, form), fallback_id="f2")
    fourth = await handle_email(runtime, _mail(3, form), fallback_id="f3")
    assert all(o.messages for o in outcomes)
    assert third.reply_key == "rate_limited" and "بیش از حد" in third.reply
    assert fourth.messages == ()
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0  # no case filed
        rows = (
            await session.execute(select(InboundMessage.outcome).order_by(InboundMessage.id))
        ).scalars()
        assert list(rows) == ["handled"] * 2 + ["refused: rate limit"] * 2
        queued = await session.scalar(select(func.count()).select_from(OutboundMessage))
        assert queued == 3
    # STOP goes through by mail too, from an address over its limit
    stop = await handle_email(runtime, _mail(4, "STOP"), fallback_id="f4")
    assert stop.reply_key != "rate_limited"
    async with runtime.sessions() as session:
        sender = await session.scalar(select(Contact).where(Contact.channel == "email"))
        assert sender is not None and sender.opted_out
        last = await session.scalar(select(InboundMessage).order_by(InboundMessage.id.desc()))
        assert last is not None and last.outcome == "handled"


# ------------------------------------------------------------------ request size


@pytest.mark.parametrize("chunked", [False, True])
async def test_request_bodies_past_the_cap_get_413_on_every_route(
    settings, city_config, admin_headers, chunked: bool
):
    app = create_app(settings.model_copy(update={"max_request_bytes": 4096}), city_config)
    transport = httpx.ASGITransport(app=app)
    big = b'{"service": "land_use_inquiry", "phone": "09121234567", "x": "' + b"a" * 8000 + b'"}'

    async def body():  # no Content-Length: the cap is counted as the chunks arrive
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            form = "application/x-www-form-urlencoded"
            for path, kind in (
                ("/api/v1/cases", "application/json"),
                ("/sms/twilio", form),
                ("/admin/login", form),
            ):
                content = body() if chunked else big
                headers = {**admin_headers, "content-type": kind}
                response = await client.post(path, content=content, headers=headers)
                assert response.status_code == 413, (path, response.text)
            small = await client.post(
                "/api/v1/cases", json={"service": "nope"}, headers=admin_headers
            )
            assert small.status_code == 422  # under the cap: the route answers
    finally:
        await app.state.runtime.close()
