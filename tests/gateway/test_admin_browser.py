"""The admin pages in Debian's Chromium, driven by Playwright, against a served gateway.

An operator signs in, adds a Persian keyword, sees a conflicting one refused, changes
cases' status, and the citizens' SMS reaches the Twilio stand-in and their email the
SMTP server; a citizen's text holding <script> is shown as text. JavaScript is off in
the browser: the pages work without it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from gateway.app import create_app
from gateway.outbox import deliver_due
from gateway.runtime import Runtime
from tests.support import (
    mail_server_settings,
    make_settings,
    missing_service,
    reply_text,
    sms_params,
)
from tests.twilio_standin import AUTH_TOKEN

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "sara-operator-token-0123456789"
FIELDS = {"postal_code": "1435678911", "district": "6", "plate_number": "12", "intended_use": "1"}


@pytest.fixture
def served(database_url, city_config, twilio_api, smtp_capture, tmp_path):
    """The gateway served by uvicorn on a loopback port, in a thread of its own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(
        database_url,
        operator_tokens=f"sara:{TOKEN}",
        twilio_auth_token=None,
        dev_mode=True,
        public_url=None,
        **twilio_api.settings(),
        **mail_server_settings(smtp=smtp_capture),
        data_dir=tmp_path,
        run_outbox=False,
        secret_key="browser-test-secret-key",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, city_config), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield (
        f"http://127.0.0.1:{port}",
        settings.model_copy(update={"twilio_auth_token": SecretStr(AUTH_TOKEN)}),
    )
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
async def browser():
    if not CHROMIUM.exists():
        missing_service("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-gpu",
            ],
        )
        yield chromium
        await chromium.close()


async def test_operator_work_in_the_browser(served, browser, twilio_api, smtp_capture, city_config):
    base, settings = served
    api = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        sms_case = (
            await http.post(
                "/api/v1/cases",
                headers=api,
                json={"service": "land_use_inquiry", "phone": "09121234567", "fields": FIELDS},
            )
        ).json()
        mail_case = (
            await http.post(
                "/api/v1/cases",
                headers=api,
                json={
                    "service": "land_use_inquiry",
                    "email": "maryam@example.org",
                    "fields": FIELDS,
                },
            )
        ).json()
        hostile = await http.post(
            "/sms/twilio",
            data=sms_params("<script>document.title='pwned'</script> سلام", sender="+989121234567"),
        )
        assert hostile.status_code == 200 and reply_text(hostile.text)
        forged = await http.post(f"/admin/cases/{sms_case['code']}", data={"status": "closed"})
        assert forged.status_code in (303, 403)

    context = await browser.new_context(java_script_enabled=False, locale="fa-IR")
    page = await context.new_page()
    await page.goto(f"{base}/admin")
    assert page.url.endswith("/admin/login")
    assert await page.locator("html").get_attribute("dir") == "rtl"
    await page.fill("input[name=token]", "wrong-token-000000000000")
    await page.click("button[type=submit]")
    assert await page.locator("[role=alert]").count() == 1
    await page.fill("input[name=token]", TOKEN)
    await page.click("button[type=submit]")
    assert page.url.endswith("/admin/cases")
    assert await page.locator("header").inner_text() != ""

    await page.goto(f"{base}/admin/keywords")
    await page.select_option("select[name=command]", "status")
    await page.select_option("select[name=language]", "fa")
    await page.fill("input[name=keyword]", "استعلام")
    await page.click("fieldset button[type=submit]")
    assert "افزوده شد" in await page.locator("[role=status]").inner_text()
    assert await page.locator("input[name=keyword][value='استعلام']").count() == 1
    await page.select_option("select[name=command]", "status")
    await page.fill("input[name=keyword]", "راهنما")
    await page.click("fieldset button[type=submit]")
    refusal = await page.locator("[role=alert]").inner_text()
    assert "پذیرفته نشد" in refusal and "help" in refusal

    for case, status in ((sms_case, "in_review"), (mail_case, "approved")):
        await page.goto(f"{base}/admin/cases/{case['code']}")
        await page.select_option("select[name=status]", status)
        await page.fill("textarea[name=note]", "مدارک کامل است")
        await page.click("fieldset button[type=submit]")
        assert "ثبت شد" in await page.locator("[role=status]").inner_text()
        shown = await page.locator("#status").inner_text()
        assert shown == city_config.status_name(status, "fa")

    await page.goto(f"{base}/admin/cases/{sms_case['code']}")
    message_cells = page.locator("td.message")
    texts = [await message_cells.nth(i).inner_text() for i in range(await message_cells.count())]
    assert any("<script>document.title='pwned'</script>" in t for t in texts)
    assert await page.title() != "pwned"
    await page.goto(f"{base}/admin/stats")
    assert await page.locator("svg").count() == 4
    await context.close()

    runtime = Runtime.create(settings, city_config)
    try:
        delivery = await deliver_due(runtime)
    finally:
        await runtime.close()
    assert delivery.sent == 2, await _errors(settings, city_config)
    (sms,) = twilio_api.sent
    assert sms["To"] == "+989121234567" and "در حال بررسی" in sms["Body"]
    (mail,) = smtp_capture.messages
    assert mail.rcpt_tos == ["maryam@example.org"]
    assert "تأیید شد" in mail.message.get_body(("plain",)).get_content()


async def _errors(settings, city_config) -> list[str]:
    from sqlalchemy import select

    from models.messages import OutboundMessage

    runtime = Runtime.create(settings, city_config)
    try:
        async with runtime.sessions() as session:
            rows = (await session.execute(select(OutboundMessage))).scalars().all()
            return [f"{r.channel} {r.status} {r.last_error}" for r in rows if r.last_error]
    finally:
        await runtime.close()
