"""A cap on every HTTP request's body, before any route reads it.

A request declaring a longer body (Content-Length) is answered 413 without reading it,
and one declaring a shorter body passes untouched (the server never reads past the
declared length); a body sent in chunks is counted as it arrives and cut off at the cap
with a 413. The routes keep their own, smaller caps (the Twilio form:
`gateway.twilio_sms`); this one keeps an operator API call or a stray client from
making the process hold megabytes.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(HTTPException):
    """Raised from `receive` inside a route: an HTTPException, so that FastAPI's body
    parsing passes it on and the app answers it as a 413."""

    def __init__(self) -> None:
        super().__init__(413, "request too large")


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` get 413 `{"detail": "request too large"}`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await _refuse(send)
                    return
                # A declared length within the cap: the server hands the app no more
                # than that (uvicorn's parsers end the request there), so nothing to
                # count; every webhook comes this way.
                await self.app(scope, receive, send)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await _refuse(send)


async def _refuse(send: Send) -> None:
    body = json.dumps({"detail": "request too large"}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
