"""Shared fixtures: every database suite runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from CITYGATE_TEST_POSTGRES_URL (default the development machine's
server on 127.0.0.1:5432, database `test`); each test run makes a database of its own
and drops it at the end. When a service is missing its tests are skipped with the
reason, unless CITYGATE_REQUIRE_SERVICES=1, which makes that a failure.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.settings import CityConfig, Settings, load_city_config
from models.base import Base
from models.db import make_engine, migrate
from tests.mailservers import dovecot, dovecot_tls, smtp_capture  # noqa: F401  (fixtures)
from tests.support import (
    ADMIN_TOKEN,
    PG_URL,
    ROOT,
    Twilio,
    make_settings,
    missing_service,
)
from tests.twilio_standin import twilio_api  # noqa: F401  (fixture)


@pytest.fixture(scope="session")
def city_config() -> CityConfig:
    return load_city_config(ROOT / "config.yaml")


async def _pg_database() -> tuple[str, Callable[[], Any]]:
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"citygate_test_{uuid.uuid4().hex[:10]}"
    try:
        async with asyncio.timeout(10):
            async with admin.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        await admin.dispose()
        return "", lambda: None
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    async def drop() -> None:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    return url, drop


@pytest.fixture(scope="session")
async def pg_url() -> AsyncIterator[str | None]:
    url, drop = await _pg_database()
    if not url:
        yield None
        return
    engine = make_engine(url)
    await migrate(engine)
    await engine.dispose()
    yield url
    await drop()


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / "citygate.db"
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url)
    await migrate(engine)
    await engine.dispose()
    return url


async def _empty_tables(url: str) -> None:
    engine = make_engine(url)
    names = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                await conn.execute(text(f"DELETE FROM {name}"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, sqlite_url: str, pg_url: str | None
) -> AsyncIterator[str]:
    """A migrated, empty database of each backend."""
    if request.param == "postgresql":
        if pg_url is None:
            missing_service(f"PostgreSQL not reachable at {PG_URL}")
        url = pg_url
    else:
        url = sqlite_url
    assert url is not None
    await _empty_tables(url)
    yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def app(settings: Settings, city_config: CityConfig) -> AsyncIterator[Any]:
    application = create_app(settings, city_config)
    yield application
    await application.state.runtime.close()


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 44321))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.internal") as c:
        yield c


@pytest.fixture
def twilio(client: httpx.AsyncClient) -> Twilio:
    return Twilio(client)


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("TWILIO_AUTH_TOKEN", "CITYGATE_DEV_MODE", "CITYGATE_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    yield
