"""Engine, sessions and migrations.

SQLite (aiosqlite, one thread hand-off a statement: `models.sqlite_driver`; WAL) by
default, PostgreSQL (asyncpg) through the database URL.
Migrations are Alembic's, run programmatically on the engine's own connection.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

from models import sqlite_driver

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", **kwargs: Any) -> AsyncEngine:
    """An async engine; for SQLite the file's folder is created and WAL switched on.

    `sqlite_synchronous` is SQLite's `synchronous` setting in WAL mode: FULL (the default)
    syncs the WAL at every commit, so a committed message survives a power cut; NORMAL
    syncs only at checkpoints, so a power cut (not a crash of the process) may undo the
    last commits, messages Twilio was already told we have. Group commit makes FULL cost
    one sync per group instead of one per message."""
    if sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(
            f"sqlite_synchronous must be FULL, NORMAL or EXTRA, not {sqlite_synchronous!r}"
        )
    synchronous = sqlite_synchronous.upper()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        if parsed.drivername == "sqlite+aiosqlite":  # one hand-off a statement
            parsed = parsed.set(drivername=sqlite_driver.DRIVER)
        engine = create_async_engine(parsed, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.close()

        return engine
    engine = create_async_engine(url, **kwargs)
    if "pool_pre_ping" not in kwargs:  # the default: pinged when it was idle (below)
        _ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection idle this long is pinged before it is used again.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "citygate_idle_since"


def _ping_when_idle(engine: AsyncEngine) -> None:
    """A stale connection (the server restarted, a firewall dropped it) is found before
    a transaction uses it, without a ping at every checkout as `pool_pre_ping` does.

    asyncpg's ping is three round trips (BEGIN, an empty query, ROLLBACK): under load,
    with one group of messages at a time on a connection, a quarter of a group's round
    trips, for connections used a few milliseconds before. Only a connection that sat in
    the pool for `PING_AFTER_IDLE_SECONDS` is pinged now, and replaced when the ping
    fails, as the pool's own pre-ping would. A connection busy up to the moment the
    server went away fails at its first statement instead: SQLAlchemy then invalidates
    the whole pool, the message group falls back to running each message alone on new
    connections (`gateway.group_commit`), and Twilio retries what still failed
    (tests/faults/test_pg_restart.py)."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _idle(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or used a moment ago
        try:
            sync_engine.dialect.do_ping(dbapi_conn)
        except Exception as error:  # the pool replaces it and checks out again
            raise DisconnectionError(f"stale connection: {error}") from error


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply the migrations up to `revision` on this engine's database."""

    def _upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def schema_state(engine: AsyncEngine) -> tuple[set[str], set[str]]:
    """(revisions applied in the database, head revisions of the code)."""

    def _current(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        current = await conn.run_sync(_current)
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    return current, heads


def known_revisions() -> set[str]:
    """Every migration revision this code has."""
    return {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
