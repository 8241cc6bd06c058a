"""The HTTP access log: a line for every request, as uvicorn writes it, but one.

uvicorn's own access log (turned off by `citygate serve`) wrote a line for every
request, and its formatting was a tenth of a webhook request's CPU (docs/BENCHMARKS.md).
This middleware writes the same line, with the same arguments, on the logger
`citygate.access`, which `citygate serve` gives uvicorn's access handler and format
(`LOG_CONFIG`), so the output is uvicorn's, character for character, with the same
masking of query strings (`gateway.log_privacy`). The one request it leaves out is a
Twilio webhook answered 200: the message path logs that message once, with what it
asked and how it was answered (`gateway.pipeline`), so one line a message instead of
two. A webhook refused (403, 400, 413, …) keeps its access line, with the client's
address.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG

from gateway.twilio_sms import INBOUND_PATH

ACCESS_LOGGER = "citygate.access"
log = logging.getLogger(ACCESS_LOGGER)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging set-up, plus `citygate.access` on its access handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"][ACCESS_LOGGER] = {"handlers": ["access"], "level": "INFO", "propagate": False}
    return config


LOG_CONFIG = _log_config()


class AccessLog:
    """ASGI middleware: the access line of each HTTP request once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        logged = False

        async def answered(message: Message) -> None:
            nonlocal logged
            if message["type"] == "http.response.start" and not logged:
                logged = True  # written as the answer starts, as uvicorn writes it
                _line(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, answered)
        except BaseException:
            if not logged:  # the app raised before answering: the client gets a 500
                _line(scope, 500)
            raise


def _line(scope: Scope, status: int) -> None:
    if status == 200 and scope.get("path") == INBOUND_PATH:
        return  # the message line records it (gateway.pipeline)
    log.info(
        '%s - "%s %s HTTP/%s" %d',
        _client(scope),
        scope.get("method", ""),
        _path_with_query(scope),
        scope.get("http_version", "1.1"),
        status,
    )


def _client(scope: Scope) -> str:
    """ "host:port" as uvicorn writes it; any ASGI server's (or test client's) form."""
    client = scope.get("client")
    if not client:
        return ""
    return f"{client[0]}:{client[1]}"


def _path_with_query(scope: Scope) -> str:
    """The path as sent (`raw_path` when the server gives it) and the query, as uvicorn
    writes them."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path
