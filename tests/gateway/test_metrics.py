"""/metrics as Prometheus reads it: the outbox's depth, age and dead letters from the
database (SQLite and PostgreSQL), and the error counter of an unexpected failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from models.messages import OutboundMessage

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_outbox_depth_age_and_dead_letters(app, client):
    runtime = app.state.runtime
    async with runtime.sessions.begin() as session:
        for minutes, status in ((30, "pending"), (5, "sending"), (1, "sent"), (90, "dead")):
            session.add(
                OutboundMessage(
                    channel="email",
                    to_address="a@example.org",
                    body="x",
                    status=status,
                    created_at=T0 - timedelta(minutes=minutes),
                )
            )
    runtime.clock = lambda: T0
    seen = await scrape(client)
    email = (("channel", "email"),)
    assert seen[("citygate_outbox_waiting", email)] == 2
    assert seen[("citygate_outbox_oldest_waiting_seconds", email)] == 30 * 60
    assert seen[("citygate_outbox_dead", email)] == 1
    sms = (("channel", "sms"),)
    assert seen[("citygate_outbox_waiting", sms)] == 0
    assert seen[("citygate_outbox_oldest_waiting_seconds", sms)] == 0


HTTP_ERRORS = ("citygate_errors_total", (("part", "http"),))


async def _broken(*args, **kwargs):
    raise RuntimeError("boom")


def _client_seeing_500s(app) -> httpx.AsyncClient:
    """A client that gets the app's 500 answer instead of the exception behind it."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gw")


async def _assert_internal_error(client, response, errors_before: float) -> None:
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert (await scrape(client))[HTTP_ERRORS] == errors_before + 1


async def test_an_unexpected_failure_is_counted(app, admin_headers, monkeypatch):
    from gateway import api_cases

    async with _client_seeing_500s(app) as client:
        before = (await scrape(client)).get(HTTP_ERRORS, 0.0)
        monkeypatch.setattr(api_cases, "search_cases", _broken)
        response = await client.get("/api/v1/cases", headers=admin_headers)
        await _assert_internal_error(client, response, before)


async def test_an_unexpected_failure_of_the_webhook_is_answered_and_counted(
    app, monkeypatch, caplog
):
    """The webhook skips the router (`gateway.twilio_sms.InboundFastPath`), not the error
    handler of last resort: a 500 with the same body, counted, logged with its access
    line."""
    from gateway import twilio_sms
    from tests.support import Twilio, sms_params

    async with _client_seeing_500s(app) as client:
        before = (await scrape(client)).get(HTTP_ERRORS, 0.0)
        monkeypatch.setattr(twilio_sms, "process", _broken)
        caplog.set_level("INFO")
        response = await Twilio(client).post(sms_params("HELP"))
        await _assert_internal_error(client, response, before)
        assert "unexpected error on POST /sms/twilio" in caplog.text
        assert '"POST /sms/twilio HTTP/1.1" 500' in caplog.text

        monkeypatch.undo()
        assert (await client.get("/sms/twilio")).status_code == 405  # the router's answer
        assert (await Twilio(client).post(sms_params("HELP"))).status_code == 200
