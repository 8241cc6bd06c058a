"""The admin forms without a browser: sign-in, CSRF on every form, escaping."""

from __future__ import annotations

import re

import pytest

from tests.support import ADMIN_TOKEN, make_settings, sms_params, twilio_signature


@pytest.fixture
def settings(database_url):
    return make_settings(database_url, public_url=None)


async def sign_in(client) -> str:
    page = await client.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = await client.post("/admin/login", data={"csrf": csrf, "token": ADMIN_TOKEN})
    assert response.status_code == 303 and response.headers["location"] == "/admin/cases"
    cases = await client.get("/admin/cases")
    return re.search(r'name="csrf" value="([^"]+)"', cases.text).group(1)


async def test_every_form_needs_the_sessions_csrf_token(client):
    csrf = await sign_in(client)
    for path, data in [
        ("/admin/keywords", {"command": "status", "language": "fa", "keyword": "استعلام"}),
        ("/admin/keywords/1/remove", {}),
        ("/admin/outbox/1/retry", {}),
        ("/admin/logout", {}),
    ]:
        missing = await client.post(path, data=data)
        wrong = await client.post(path, data={**data, "csrf": "x" * 32})
        assert missing.status_code == wrong.status_code == 403, path
    ok = await client.post(
        "/admin/keywords",
        data={"csrf": csrf, "command": "status", "language": "fa", "keyword": "استعلام"},
    )
    assert ok.status_code == 303


async def test_login_form_needs_its_own_token_and_a_valid_operator_token(client):
    refused = await client.post("/admin/login", data={"csrf": "forged", "token": ADMIN_TOKEN})
    assert refused.status_code == 403
    page = await client.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    wrong = await client.post("/admin/login", data={"csrf": csrf, "token": "no" * 10})
    assert wrong.status_code == 401
    assert (await client.get("/admin/keywords")).status_code == 303


async def test_keyword_edit_and_citizen_text_escaped(client, admin_headers):
    csrf = await sign_in(client)
    await client.post(
        "/admin/keywords",
        data={"csrf": csrf, "command": "status", "language": "fa", "keyword": "استعلام"},
    )
    listed = (await client.get("/api/v1/keywords", headers=admin_headers)).json()
    keyword_id = next(k["id"] for k in listed["keywords"] if k["source"] == "operator")
    clash = await client.post(
        f"/admin/keywords/{keyword_id}", data={"csrf": csrf, "keyword": "راهنما"}
    )
    assert clash.status_code == 409 and "پذیرفته نشد" in clash.text
    edited = await client.post(
        f"/admin/keywords/{keyword_id}", data={"csrf": csrf, "keyword": "استعلام‌ها"}
    )
    assert edited.status_code == 303
    fields = {
        "postal_code": "1435678911",
        "district": "6",
        "plate_number": "<img src=x onerror=alert(1)>",
        "intended_use": "1",
    }
    created = await client.post(
        "/api/v1/cases",
        json={"service": "land_use_inquiry", "phone": "09121234567", "fields": fields},
        headers=admin_headers,
    )
    params = sms_params("<script>alert(1)</script>", sender="+989121234567")
    signature = twilio_signature("http://gateway.internal/sms/twilio", params)
    sent = await client.post("/sms/twilio", data=params, headers={"x-twilio-signature": signature})
    assert sent.status_code == 200
    page = await client.get(f"/admin/cases/{created.json()['code']}")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    detail = (
        await client.get(f"/api/v1/cases/{created.json()['code']}", headers=admin_headers)
    ).json()
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]
