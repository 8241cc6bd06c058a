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
from typing import TYPE_CHECKING, Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

if TYPE_CHECKING:
    from uvicorn._types import HTTPScope

ACCESS_LOGGER = "citygate.access"
log = logging.getLogger(ACCESS_LOGGER)
_WEBHOOK = "/sms/twilio"


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
        status = 500  # what the client gets when the app raises before answering

        async def answered(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, answered)
        finally:
            if not (status == 200 and scope["path"] == _WEBHOOK):
                http = cast("HTTPScope", scope)
                log.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(http),
                    scope["method"],
                    get_path_with_query_string(http),
                    scope["http_version"],
                    status,
                )
