"""The access log as `citygate serve` writes it (`gateway.access_log`): uvicorn's line,
character for character, for every request but a webhook answered 200, whose message
the pipeline logs instead; a refused webhook keeps its line and its client address."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from uvicorn.logging import AccessFormatter

from gateway.access_log import ACCESS_LOGGER, LOG_CONFIG
from gateway.app import create_app
from gateway.settings import CityConfig, Settings
from tests.support import Twilio, served, sms_params


class _Lines(logging.Handler):
    """The access lines as the configured formatter writes them (no colours)."""

    def __init__(self) -> None:
        super().__init__()
        fmt = LOG_CONFIG["formatters"]["access"]["fmt"]
        self.setFormatter(AccessFormatter(fmt=fmt, use_colors=False))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
async def access_lines(
    settings: Settings, city_config: CityConfig, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[tuple[str, _Lines]]:
    lines = _Lines()
    access = logging.getLogger(ACCESS_LOGGER)
    caplog.set_level(logging.INFO, logger="citygate.pipeline")
    async with served(lambda: create_app(settings, city_config)) as url:
        access.addHandler(lines)  # after uvicorn's logging set-up, which resets handlers
        try:
            yield url, lines
        finally:
            access.removeHandler(lines)


async def test_one_line_a_request_but_one_a_message(
    access_lines: tuple[str, _Lines], caplog: pytest.LogCaptureFixture
) -> None:
    url, lines = access_lines
    async with httpx.AsyncClient(base_url=url) as http:
        twilio = Twilio(http)
        assert "STATUS" in await twilio.sms("HELP", sender="+989121110000")
        forged = await twilio.post(sms_params("HELP", "+989121110001"), signature="forged")
        assert forged.status_code == 403
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/no/such/page?x=1")).status_code == 404
    assert all(line.startswith("INFO:     127.0.0.1:") for line in lines.lines)
    assert [line.split(" - ", 1)[1] for line in lines.lines] == [
        '"POST /sms/twilio HTTP/1.1" 403 Forbidden',
        '"GET /healthz HTTP/1.1" 200 OK',
        '"GET /no/such/page?x=1 HTTP/1.1" 404 Not Found',
    ]
    # the message answered 200 is in the log once, by the message path
    handled = [r for r in caplog.records if r.name == "citygate.pipeline"]
    assert [r.getMessage().split(": ", 1)[1] for r in handled] == ["help -> help"]


def test_serve_gives_the_access_lines_uvicorns_handler_and_format() -> None:
    logger = LOG_CONFIG["loggers"][ACCESS_LOGGER]
    assert logger == {"handlers": ["access"], "level": "INFO", "propagate": False}
    assert LOG_CONFIG["handlers"]["access"]["formatter"] == "access"


async def test_a_request_the_app_fails_on_is_logged_as_a_500(
    settings: Settings, city_config: CityConfig
) -> None:
    app = create_app(settings, city_config)

    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    app.add_route("/boom", boom)
    lines = _Lines()
    access = logging.getLogger(ACCESS_LOGGER)
    access.addHandler(lines)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            assert (await http.get("/boom?x=1")).status_code == 500
    finally:
        access.removeHandler(lines)
    assert [line.split(" - ", 1)[1] for line in lines.lines] == [
        '"GET /boom?x=1 HTTP/1.1" 500 Internal Server Error'
    ]
