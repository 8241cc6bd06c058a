"""The running gateway's shared parts, built once from settings: config, engine, sessions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.group_commit import GroupCommit
from gateway.log_privacy import install_access_log_mask
from gateway.settings import CityConfig, Settings, load_city_config
from models.base import utcnow
from models.db import make_engine, make_sessionmaker, migrate
from models.keywords import list_keyword_rows
from parsers.grammar import KeywordTable


@dataclass
class Runtime:
    settings: Settings
    config: CityConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime] = utcnow
    # The group commit of inbound messages (gateway.pipeline creates it on first use).
    inbound_group: GroupCommit[Any, Any] | None = field(default=None, repr=False)
    _keyword_cache: tuple[tuple[tuple[str, str, str], ...], KeywordTable] | None = field(
        default=None, repr=False
    )

    @classmethod
    def create(cls, settings: Settings, config: CityConfig | None = None) -> Runtime:
        """The parts, and the process's logs kept free of citizens' data: statement
        parameters (addresses, message bodies) left out of the database errors that
        tracebacks and warnings show, and out of SQLAlchemy's own log; the query strings
        of the HTTP access log masked (`gateway.log_privacy`)."""
        city = config if config is not None else load_city_config(settings.config)
        engine = make_engine(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            hide_parameters=True,
        )
        install_access_log_mask()
        return cls(
            settings=settings, config=city, engine=engine, sessions=make_sessionmaker(engine)
        )

    @property
    def operators(self) -> dict[str, str]:
        return self.settings.operators()

    @cached_property
    def secret(self) -> bytes:
        """The key our Message-ID tokens are signed with (CITYGATE_SECRET_KEY, else a key
        kept in the data folder; several hosts must share CITYGATE_SECRET_KEY)."""
        if self.settings.secret_key is not None:
            return self.settings.secret_key.get_secret_value().encode()
        path = self.settings.data_dir / "secret.key"
        if not path.exists():
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.settings.database_url).get_backend_name() == "sqlite"

    async def migrate(self) -> None:
        await migrate(self.engine)

    async def keyword_table(self, session: AsyncSession) -> KeywordTable:
        """Config keywords then operators' stored ones: read once per transaction (a
        group of messages shares one read), rebuilt only when the rows change."""
        cached = session.info.get("keyword_table")
        if isinstance(cached, KeywordTable):
            return cached
        rows = tuple(self.config.keyword_triples() + await list_keyword_rows(session))
        if self._keyword_cache is None or self._keyword_cache[0] != rows:
            self._keyword_cache = (rows, KeywordTable.build(rows))
        session.info["keyword_table"] = self._keyword_cache[1]
        return self._keyword_cache[1]

    async def close(self) -> None:
        if self.inbound_group is not None:
            await self.inbound_group.close()
        await self.engine.dispose()
