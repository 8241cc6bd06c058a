"""A local stand-in of Twilio's Messages API, answering as Twilio documents.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth and a form
(To, From, Body, StatusCallback) answers 201 with the message resource, or, when the test
queued a failure, Twilio's error JSON (`code`, `message`, `more_info`, `status`). The
status callbacks Twilio would send are kept for the test to deliver, signed.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+982100000000"  # the city's number replies come from


@dataclass
class TwilioStandIn:
    port: int = 0
    sent: list[dict[str, str]] = field(default_factory=list)
    failures: list[tuple[int, int, str]] = field(default_factory=list)
    callbacks: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        """Settings sending the gateway's SMS through this stand-in (Twilio's REST API),
        from the city's number; the auth token is each suite's own choice."""
        return {
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_from_number": FROM_NUMBER,
            "twilio_api_url": self.url,
        }

    def fail_next(self, status: int, code: int, message: str) -> None:
        self.failures.append((status, code, message))

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/2010-04-01/Accounts/{account}/Messages.json")
        async def create(account: str, request: Request) -> JSONResponse:
            expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return JSONResponse(
                    {"code": 20003, "message": "Authenticate", "status": 401}, status_code=401
                )
            form = dict(await request.form())
            if self.failures:
                status, code, message = self.failures.pop(0)
                return JSONResponse(
                    {
                        "code": code,
                        "message": message,
                        "status": status,
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    },
                    status_code=status,
                )
            sid = "SM" + secrets.token_hex(16)
            self.sent.append({**{k: str(v) for k, v in form.items()}, "Sid": sid})
            if form.get("StatusCallback"):
                for status in ("sent", "delivered"):
                    self.callbacks.append(
                        (
                            str(form["StatusCallback"]),
                            {
                                "MessageSid": sid,
                                "MessageStatus": status,
                                "AccountSid": ACCOUNT_SID,
                                "To": str(form["To"]),
                            },
                        )
                    )
            return JSONResponse(
                {
                    "sid": sid,
                    "account_sid": account,
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "body": form.get("Body"),
                    "status": "queued",
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                    "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
                },
                status_code=201,
            )

        return api


@pytest.fixture
def twilio_api():
    """The stand-in served by uvicorn on a free loopback port, in a thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    standin = TwilioStandIn(port=port)
    server = uvicorn.Server(
        uvicorn.Config(
            standin.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield standin
    server.should_exit = True
    thread.join(timeout=10)
