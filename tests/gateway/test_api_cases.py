"""Operator case API and STATUS end to end: open a case, move it, the citizen asks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models.contacts import Contact
from parsers import tracking
from parsers.display import persian_digits
from parsers.segments import segments
from tests.support import Twilio

CITIZEN = "+989121234567"
STRANGER = "+989351112233"


LAND_USE = {
    "postal_code": "1435678911",
    "district": "6",
    "plate_number": "۱۲۳/۴۵",
    "intended_use": "1",
}


async def open_case(client, headers, **overrides) -> dict:
    body = {"service": "land_use_inquiry", "phone": "09121234567", "fields": LAND_USE}
    body.update(overrides)
    response = await client.post("/api/v1/cases", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_case_has_the_fixed_shape(client, admin_headers):
    created = await open_case(client, admin_headers)
    assert tracking.is_valid(created["code"])
    assert len(created["code"]) == 12
    assert len(created["pin"]) == 4 and created["pin"].isdigit()
    assert created["status"] == "received"
    assert created["history"][0]["kind"] == "created"


async def test_create_case_by_email(client, admin_headers, app):
    created = await open_case(client, admin_headers, phone=None, email="Citizen@Example.ORG")
    assert created["channel"] == "email"
    async with app.state.runtime.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.address == "citizen@example.org"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"service": "no_such_service"}, "unknown service"),
        ({"district": 99}, "unknown district"),
        ({"fields": {**LAND_USE, "postal_code": "12"}}, "field_postal_code"),
        ({"fields": {"district": "6"}}, "field_required"),
        ({"phone": "not a phone"}, "invalid contact"),
        ({"email": "a@b.org"}, "exactly one"),
        ({"fields": {"color": "blue"}}, "fields not in service"),
    ],
)
async def test_create_case_refuses_bad_input_with_reason(
    client, admin_headers, overrides, fragment
):
    body = {"service": "land_use_inquiry", "phone": "09121234567", "fields": LAND_USE}
    body.update(overrides)
    response = await client.post("/api/v1/cases", json=body, headers=admin_headers)
    assert response.status_code == 422
    assert fragment in response.text


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong-token-xxxxxxxxx"}])
async def test_operator_api_needs_the_token(client, headers):
    response = await client.post(
        "/api/v1/cases",
        json={"service": "land_use_inquiry", "phone": "09121234567"},
        headers=headers,
    )
    assert response.status_code == 401


BEYOND_INT32 = 2**31  # past PostgreSQL's INTEGER
BEYOND_INT64 = 2**63  # past its BIGINT, and SQLite's INTEGER


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", f"/api/v1/cases?district={BEYOND_INT32}", None),
        ("GET", f"/api/v1/cases?offset={BEYOND_INT64}", None),
        ("GET", "/api/v1/cases?q=a%00b", None),
        ("GET", "/api/v1/cases?status=%00", None),
        ("PATCH", "/api/v1/cases/{code}", {"note": "a\x00b"}),
        ("PATCH", "/api/v1/cases/{code}", {"department": "\x00"}),
        ("POST", "/api/v1/keywords", {"command": "new", "language": "en", "keyword": "a\x00"}),
        ("PATCH", f"/api/v1/keywords/{BEYOND_INT32}", {"keyword": "tazeh"}),
        ("DELETE", f"/api/v1/keywords/{BEYOND_INT64}", None),
        ("POST", f"/api/v1/outbox/{BEYOND_INT32}/retry", None),
        ("GET", "/api/v1/outbox?limit=-1", None),
        ("GET", f"/api/v1/mail/failed?limit={BEYOND_INT32}", None),
    ],
)
async def test_what_the_database_cannot_hold_is_a_422_not_a_500(
    client, admin_headers, method, path, body
):
    """Found by tests/gateway/test_api_schemathesis.py: numbers past the database's
    integers and text with NUL reached PostgreSQL (or SQLite) and came back as 500s."""
    if "{code}" in path:
        path = path.format(code=(await open_case(client, admin_headers))["code"])
    response = await client.request(method, path, json=body, headers=admin_headers)
    assert response.status_code == 422, response.text


async def test_patch_status_is_seen_by_the_citizen(client, admin_headers, twilio: Twilio):
    created = await open_case(client, admin_headers)
    code = created["code"]
    response = await client.patch(
        f"/api/v1/cases/{tracking.format_code(code)}",
        json={"status": "awaiting_citizen", "note": "لطفاً سند مالکیت را بیاورید"},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    history = response.json()["history"]
    assert history[-1]["status_from"] == "received"
    assert history[-1]["status_to"] == "awaiting_citizen"
    assert history[-1]["actor"] == "admin"

    reply = await twilio.sms(f"وضعیت {persian_digits(code)}", sender="09121234567")
    assert "منتظر پاسخ شما" in reply
    assert "استعلام کاربری ملک" in reply
    assert "سند مالکیت" in reply
    assert segments(reply) <= 2

    english = await twilio.sms(f"STATUS {code}", sender=CITIZEN)
    assert "Awaiting your reply" in english


async def test_patch_refuses_unknown_status_and_unknown_case(client, admin_headers):
    created = await open_case(client, admin_headers)
    bad = await client.patch(
        f"/api/v1/cases/{created['code']}", json={"status": "done"}, headers=admin_headers
    )
    assert bad.status_code == 422
    assert "in_review" in bad.text
    missing = await client.patch(
        f"/api/v1/cases/{tracking.generate()}", json={"status": "closed"}, headers=admin_headers
    )
    assert missing.status_code == 404


async def test_status_privacy_identical_replies(client, admin_headers, twilio: Twilio):
    created = await open_case(client, admin_headers)
    code, pin = created["code"], created["pin"]
    wrong_pin = f"{(int(pin) + 1) % 10000:04d}"
    other = tracking.generate()
    while other == code:
        other = tracking.generate()

    def normalise(reply: str, which: str) -> str:
        shown = tracking.format_code(which)
        return reply.replace(persian_digits(shown), "CODE").replace(shown, "CODE")

    from_stranger = await twilio.sms(f"STATUS {code}", sender=STRANGER)
    with_wrong_pin = await twilio.sms(f"STATUS {code} {wrong_pin}", sender=STRANGER)
    nonexistent = await twilio.sms(f"STATUS {other}", sender=STRANGER)
    assert (
        normalise(from_stranger, code)
        == normalise(with_wrong_pin, code)
        == normalise(nonexistent, other)
    )
    assert "No request found" in nonexistent
    # The right PIN from any number opens it; so does the owner's own number.
    with_pin = await twilio.sms(f"STATUS {code} {pin}", sender=STRANGER)
    assert "Received" in with_pin
    assert "Land-use" in with_pin or "land-use" in with_pin.lower()
    owner = await twilio.sms(persian_digits(code), sender=CITIZEN)
    assert "دریافت شد" in owner


async def test_mistyped_code_is_told_apart_from_unknown(twilio: Twilio):
    code = tracking.generate()
    typo = code[:-1] + str((int(code[-1]) + 1) % 10)
    reply = await twilio.sms(f"وضعیت {typo}")
    assert "اشتباه" in reply
    assert "mistyped" in await twilio.sms(f"STATUS {typo}")
    unknown = await twilio.sms(f"وضعیت {code}")
    assert "پیدا نشد" in unknown


async def test_stop_and_start_recorded_on_the_contact(twilio: Twilio, app):
    async def opted_out() -> bool:
        async with app.state.runtime.sessions() as session:
            contact = (
                await session.execute(select(Contact).where(Contact.address == CITIZEN))
            ).scalar_one()
            return contact.opted_out

    for stop_word, start_word in [
        ("STOP", "START"),
        ("لغو", "شروع"),
        ("۱۱", "۱۲"),
        ("CANCEL", "UNSTOP"),
    ]:
        await twilio.sms(stop_word, sender=CITIZEN)
        assert await opted_out() is True, stop_word
        await twilio.sms(start_word, sender=CITIZEN)
        assert await opted_out() is False, start_word


async def test_lang_changes_every_later_reply(twilio: Twilio):
    assert "دستور" in await twilio.sms("راهنما", sender=CITIZEN)
    assert await twilio.sms("LANG en", sender=CITIZEN) == "Replies will now be in English."
    assert "Commands" in await twilio.sms("راهنما", sender=CITIZEN)
    assert await twilio.sms("زبان فارسی", sender=CITIZEN) == "از این پس پاسخ‌ها به فارسی است."
    assert "دستور" in await twilio.sms("help", sender=CITIZEN)


async def test_typo_only_suggests(twilio: Twilio, app):
    reply = await twilio.sms("STPO", sender=CITIZEN)
    assert "STOP" in reply
    async with app.state.runtime.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.opted_out is False


async def test_list_cases_with_filters_and_free_text(client, admin_headers):
    first = await open_case(client, admin_headers)
    second = await open_case(
        client,
        admin_headers,
        phone=None,
        email="reza@example.org",
        fields={**LAND_USE, "district": "12"},
    )
    await client.patch(
        f"/api/v1/cases/{second['code']}",
        json={
            "status": "in_review",
            "note": "نقشه ناقص است",
            "public": False,
            "department": "طرح تفصیلی",
        },
        headers=admin_headers,
    )

    async def codes(**params) -> set[str]:
        response = await client.get("/api/v1/cases", params=params, headers=admin_headers)
        assert response.status_code == 200, response.text
        return {c["code"] for c in response.json()}

    both = {first["code"], second["code"]}
    assert await codes() == both
    assert await codes(status="in_review") == {second["code"]}
    assert await codes(channel="sms") == {first["code"]}
    assert await codes(district=12) == {second["code"]}
    assert await codes(service="land_use_inquiry") == both
    assert await codes(service="demolition_permit") == set()
    assert await codes(q="نقشه ناقص") == {second["code"]}
    assert await codes(q="reza@") == {second["code"]}
    assert await codes(q=persian_digits(first["code"][:6])) == {first["code"]}
    assert await codes(since="2000-01-01T00:00:00Z", until="2001-01-01T00:00:00Z") == set()
    detail = (await client.get(f"/api/v1/cases/{second['code']}", headers=admin_headers)).json()
    assert detail["department"] == "طرح تفصیلی"
    assert [e["kind"] for e in detail["history"]] == ["created", "assign", "status"]
    assert detail["history"][-1]["public"] is False
