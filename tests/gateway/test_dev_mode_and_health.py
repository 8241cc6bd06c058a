"""Development mode (loopback only, unsigned) and the health endpoints."""

from __future__ import annotations

import httpx
import pytest

from gateway.app import create_app
from tests.support import make_settings, reply_text, sms_params


async def _client(app, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


@pytest.mark.parametrize(
    "host, expected", [("127.0.0.1", 200), ("::1", 200), ("198.51.100.7", 403)]
)
async def test_dev_mode_accepts_unsigned_from_loopback_only(
    database_url, city_config, host, expected
):
    settings = make_settings(database_url, twilio_auth_token=None, dev_mode=True, public_url=None)
    app = create_app(settings, city_config)
    async with await _client(app, host) as client:
        response = await client.post("/sms/twilio", data=sms_params("HELP"))
    await app.state.runtime.close()
    assert response.status_code == expected
    if expected == 200:
        assert "STATUS" in reply_text(response.text)


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_readyz_unready_before_migrations(tmp_path, city_config):
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    app = create_app(settings, city_config)
    async with await _client(app, "127.0.0.1") as client:
        response = await client.get("/readyz")
    await app.state.runtime.close()
    assert response.status_code == 503
    assert response.json()["migrations"]["applied"] == []


async def test_readyz_during_a_rolling_upgrade(tmp_path, city_config):
    """Behind the code (a migration missing): not ready. Ahead of it (a newer release
    migrated first, with a revision this code does not know): still ready, and says so."""
    from sqlalchemy import text

    from models.db import migrate

    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/rolling.db")
    app = create_app(settings, city_config)
    engine = app.state.runtime.engine
    try:
        await migrate(engine, "0005")
        async with await _client(app, "127.0.0.1") as client:
            behind = await client.get("/readyz")
            await migrate(engine)
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
            ahead = await client.get("/readyz")
    finally:
        await app.state.runtime.close()
    assert behind.status_code == 503
    assert behind.json()["migrations"]["applied"] == ["0005"]
    assert ahead.status_code == 200
    assert "newer than this code" in ahead.json()["note"]


async def test_readyz_unready_when_database_unreachable(city_config):
    settings = make_settings("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    app = create_app(settings, city_config)
    async with await _client(app, "127.0.0.1") as client:
        response = await client.get("/readyz")
    await app.state.runtime.close()
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


async def test_metrics_count_inbound(client, twilio):
    await twilio.sms("HELP")
    text = (await client.get("/metrics")).text
    assert 'citygate_inbound_messages_total{channel="sms",duplicate="false"}' in text
