"""Every status change and public note reaches the citizen, on the case's channel.

SMS runs the whole path against a local stand-in of Twilio's Messages API: status
change → outbox → REST call → signed status callback → delivered. Email goes to a real
SMTP server (aiosmtpd).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.outbox import deliver_due
from models.contacts import Contact
from models.messages import OutboundMessage
from parsers.display import persian_digits
from tests.support import ADMIN_TOKEN, Twilio, mail_server_settings, make_settings
from tests.twilio_standin import AUTH_TOKEN, TwilioStandIn

HEADERS = {"authorization": f"Bearer {ADMIN_TOKEN}"}
FIELDS = {"postal_code": "1435678911", "district": "6", "plate_number": "12", "intended_use": "1"}


@pytest.fixture
def settings(database_url, twilio_api: TwilioStandIn, smtp_capture, tmp_path):
    return make_settings(
        database_url,
        **twilio_api.settings(),
        **mail_server_settings(smtp=smtp_capture),
        twilio_auth_token=AUTH_TOKEN,
        data_dir=tmp_path,
    )


async def open_case(client, **contact) -> str:
    body = {"service": "land_use_inquiry", "fields": FIELDS, **contact}
    response = await client.post("/api/v1/cases", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return response.json()["code"]


async def outbox(app) -> list[OutboundMessage]:
    async with app.state.runtime.sessions() as session:
        rows = await session.execute(
            select(OutboundMessage)
            .where(OutboundMessage.kind == "notification")
            .order_by(OutboundMessage.id)
        )
        return list(rows.scalars())


async def test_sms_status_change_runs_to_delivered(client, app, twilio_api, twilio: Twilio):
    code = await open_case(client, phone="09121234567")
    changed = await client.patch(
        f"/api/v1/cases/{code}",
        json={"status": "in_review", "note": "کارشناس پرونده را بررسی می‌کند"},
        headers=HEADERS,
    )
    assert changed.json()["notification"]["status"] == "pending"
    delivery = await deliver_due(app.state.runtime)
    assert delivery.sent == 1
    (sent,) = twilio_api.sent
    assert sent["To"] == "+989121234567" and sent["From"] == "+982100000000"
    assert persian_digits(code[:4]) in sent["Body"] and "در حال بررسی" in sent["Body"]
    assert "کارشناس" in sent["Body"]
    for url, params in twilio_api.callbacks:
        path = url.removeprefix("https://gateway.city.example")
        response = await twilio.post(params, path)
        assert response.status_code == 204
    (row,) = await outbox(app)
    assert row.status == "delivered" and row.provider_id == sent["Sid"]


async def test_internal_note_is_never_sent_public_note_is(client, app, twilio_api):
    code = await open_case(client, phone="09121234567")
    await client.patch(
        f"/api/v1/cases/{code}", json={"note": "تماس با مالک", "public": False}, headers=HEADERS
    )
    await deliver_due(app.state.runtime)
    assert twilio_api.sent == []
    await client.patch(f"/api/v1/cases/{code}", json={"note": "سند را بیاورید"}, headers=HEADERS)
    await deliver_due(app.state.runtime)
    assert len(twilio_api.sent) == 1 and "سند را بیاورید" in twilio_api.sent[0]["Body"]


async def test_email_case_is_told_by_email(client, app, smtp_capture):
    code = await open_case(client, email="Maryam@Example.org")
    await client.patch(f"/api/v1/cases/{code}", json={"status": "approved"}, headers=HEADERS)
    delivery = await deliver_due(app.state.runtime)
    assert delivery.sent == 1
    (mail,) = smtp_capture.messages
    assert mail.rcpt_tos == ["maryam@example.org"]
    assert f"[CG-{code}]" in mail.message["Subject"]
    assert "تأیید شد" in mail.message.get_body(("plain",)).get_content()
    assert mail.message["Auto-Submitted"] == "auto-replied"


async def test_21610_marks_the_contact_opted_out_and_later_changes_are_held(
    client, app, twilio_api
):
    code = await open_case(client, phone="09121234567")
    twilio_api.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    await client.patch(f"/api/v1/cases/{code}", json={"status": "in_review"}, headers=HEADERS)
    delivery = await deliver_due(app.state.runtime)
    assert delivery.dead == 1
    async with app.state.runtime.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.opted_out is True
    response = await client.patch(
        f"/api/v1/cases/{code}", json={"status": "approved"}, headers=HEADERS
    )
    assert response.json()["notification"]["status"] == "suppressed"
    assert "opted out" in response.json()["notification"]["reason"]
    await deliver_due(app.state.runtime)
    assert twilio_api.sent == []


@pytest.mark.parametrize("status, code", [(429, 20429), (429, 63018), (503, 20500)])
async def test_rate_limits_and_outages_are_retried(client, app, twilio_api, status, code):
    from datetime import timedelta

    case_code = await open_case(client, phone="09121234567")
    twilio_api.fail_next(status, code, "slow down")
    await client.patch(f"/api/v1/cases/{case_code}", json={"status": "in_review"}, headers=HEADERS)
    runtime = app.state.runtime
    first = await deliver_due(runtime)
    assert first.retried == 1
    (row,) = await outbox(app)
    assert row.status == "pending" and str(code) in row.last_error
    later = row.next_attempt_at + timedelta(seconds=1)
    runtime.clock = lambda: later
    second = await deliver_due(runtime)
    assert second.sent == 1 and len(twilio_api.sent) == 1


async def test_other_client_errors_become_dead_letters(client, app, twilio_api):
    case_code = await open_case(client, phone="09121234567")
    twilio_api.fail_next(400, 21211, "Invalid 'To' Phone Number")
    await client.patch(f"/api/v1/cases/{case_code}", json={"status": "in_review"}, headers=HEADERS)
    delivery = await deliver_due(app.state.runtime)
    assert delivery.dead == 1
    (row,) = await outbox(app)
    assert row.status == "dead" and "21211" in row.last_error


async def test_operator_sees_dead_letters_and_retries_them(client, app, twilio_api):
    case_code = await open_case(client, phone="09121234567")
    twilio_api.fail_next(400, 21211, "Invalid 'To' Phone Number")
    await client.patch(f"/api/v1/cases/{case_code}", json={"status": "in_review"}, headers=HEADERS)
    await deliver_due(app.state.runtime)
    dead = (await client.get("/api/v1/outbox?status=dead", headers=HEADERS)).json()
    assert len(dead) == 1 and "21211" in dead[0]["last_error"]
    retried = await client.post(f"/api/v1/outbox/{dead[0]['id']}/retry", headers=HEADERS)
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    assert (await deliver_due(app.state.runtime)).sent == 1
    assert (await client.get("/api/v1/outbox?status=dead", headers=HEADERS)).json() == []


async def test_messages_and_services(client, twilio: Twilio):
    await twilio.sms("راهنما", sender="+989121234567")
    conversation = (
        await client.get("/api/v1/messages", params={"phone": "09121234567"}, headers=HEADERS)
    ).json()
    assert [m["direction"] for m in conversation] == ["in", "out"]
    assert conversation[0]["text"] == "راهنما"
    catalogue = (await client.get("/api/v1/services", headers=HEADERS)).json()
    assert len(catalogue) >= 8 and catalogue[0]["fields"]
