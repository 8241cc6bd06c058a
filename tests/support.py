"""Helpers the test suites share: constants, Twilio signing, webhook bodies."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from twilio.request_validator import RequestValidator

from gateway.access_log import LOG_CONFIG
from gateway.settings import Settings
from models import pg_direct, sqlite_direct

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
PG_URL = os.environ.get(
    "CITYGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("CITYGATE_REQUIRE_SERVICES") == "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
PUBLIC_URL = "https://gateway.city.example"
DESK = "desk@city.example"  # the city's address, where citizens write and replies come from


def missing_service(reason: str) -> None:
    """Skip for a missing service; fail instead when services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def corpus(*parts: str) -> Path:
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"corpus {path} not present (../shared/corpora)")
    return path


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "public_url": PUBLIC_URL,
        "admin_token": ADMIN_TOKEN,
        "twilio_auth_token": AUTH_TOKEN,
        "config": ROOT / "config.yaml",
    }
    values.update(overrides)
    return Settings(**values)


def mail_server_settings(dovecot: Any = None, smtp: Any = None) -> dict[str, Any]:
    """Settings pointing the gateway at the tests' Dovecot (`tests.mailservers`: plain
    IMAP, every mail there read, 5 s timeouts) and SMTP capture (plain SMTP, replies
    from DESK); either may be left out."""
    values: dict[str, Any] = {}
    if dovecot is not None:
        values.update(
            imap_host=dovecot.host,
            imap_port=dovecot.port,
            imap_user=dovecot.user,
            imap_password=dovecot.password,
            imap_security="none",
            imap_first_start="all",
            imap_timeout=5,
        )
    if smtp is not None:
        values.update(smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none")
        values.update(mail_from=DESK)
    return values


def as_environment(values: dict[str, Any]) -> dict[str, str]:
    """Settings as the CITYGATE_* variables a `citygate` process reads."""
    return {f"CITYGATE_{name.upper()}": str(value) for name, value in values.items()}


def twilio_signature(url: str, params: dict[str, str] | list[tuple[str, str]]) -> str:
    """Sign as Twilio signs: HMAC-SHA1 over the URL and the sorted parameters."""
    multi: dict[str, list[str]] = {}
    for key, value in params.items() if isinstance(params, dict) else params:
        multi.setdefault(key, []).append(value)

    class _Multi(dict[str, str]):
        def getall(self, key: str) -> list[str]:
            return multi[key]

    return str(RequestValidator(AUTH_TOKEN).compute_signature(url, _Multi(multi)))


_counter = iter(range(1, 10**9))


def sms_params(body: str, sender: str = "+989121234567", **extra: str) -> dict[str, str]:
    sid = f"SM{next(_counter):032x}"
    params = {
        "ToCountry": "IR",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": "+982100000000",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


class Twilio:
    """Posts webhooks to the app signed exactly as Twilio signs them."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self,
        params: dict[str, str] | list[tuple[str, str]],
        path: str = "/sms/twilio",
        *,
        signature: str | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        body = urlencode(params)
        headers = {"content-type": "application/x-www-form-urlencoded"}
        if sign:
            headers["x-twilio-signature"] = signature or twilio_signature(PUBLIC_URL + path, params)
        return await self.client.post(path, content=body, headers=headers)

    async def sms(self, body: str, sender: str = "+989121234567", **extra: str) -> str:
        """Send one SMS and return the reply text from the TwiML."""
        return "\n".join(await self.messages(body, sender, **extra))

    async def messages(self, body: str, sender: str = "+989121234567", **extra: str) -> list[str]:
        """Send one SMS and return each reply message of the TwiML."""
        response = await self.post(sms_params(body, sender, **extra))
        assert response.status_code == 200, response.text
        return reply_messages(response.text)


def reply_messages(twiml: str) -> list[str]:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return [el.text or "" for el in root.iter("Message")]


def reply_text(twiml: str) -> str:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return "".join(el.text or "" for el in root.iter("Message"))


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements sent to the database inside the block: through SQLAlchemy,
    and straight to asyncpg or SQLite (`models.pg_direct.send`, `models.sqlite_direct.send`)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    originals = {module: module.send for module in (pg_direct, sqlite_direct)}

    def watching(original: Any) -> Any:
        async def send(connection: Any, sql: str, *args: Any, **kw: Any) -> list[Any]:
            seen.append(sql)
            return cast(list[Any], await original(connection, sql, *args, **kw))

        return send

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", record)
    for module, original in originals.items():
        module.send = watching(original)  # type: ignore[assignment]
    try:
        yield seen
    finally:
        for module, original in originals.items():
            module.send = original  # type: ignore[assignment]
        event.remove(sync, "before_cursor_execute", record)


@asynccontextmanager
async def served(make_app: Callable[[], Any]) -> AsyncIterator[str]:
    """The app served by uvicorn as `citygate serve` serves it (factory, proxy headers,
    log level info, the gateway's access log instead of uvicorn's), on a free loopback
    port, in a thread; its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app,
        factory=True,
        host="127.0.0.1",
        port=port,
        proxy_headers=True,
        log_level="info",
        access_log=False,
        log_config=LOG_CONFIG,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 20)
