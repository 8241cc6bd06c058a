"""Keywords operators add at run time; the effective table is config plus these rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.pg_direct import Direct


class Keyword(Base):
    __tablename__ = "keywords"
    __table_args__ = (UniqueConstraint("normal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    command: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    keyword: Mapped[str] = mapped_column(String(64))
    normal: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64), default="config")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


async def operator_keywords(session: AsyncSession) -> list[Keyword]:
    return list((await session.execute(select(Keyword).order_by(Keyword.id))).scalars().all())


# Built once: every message group reads the table, and a statement made per call costs
# more than running it (it is built, then its cache key computed at every execution).
# Inside a transaction it goes straight to asyncpg or to SQLite's thread
# (`models.pg_direct`, `models.sqlite_direct`).
_KEYWORD_ROWS = select(Keyword.command, Keyword.language, Keyword.keyword).order_by(Keyword.id)
_DIRECT_ROWS = Direct(_KEYWORD_ROWS)


async def list_keyword_rows(session: AsyncSession) -> list[tuple[str, str, str]]:
    """(command, language, keyword) triples stored by operators, oldest first."""
    direct = await _DIRECT_ROWS.fetch(session, {})
    if direct is not None:
        return [(c, lang, k) for c, lang, k in direct]
    rows = await session.execute(_KEYWORD_ROWS)
    return [(c, lang, k) for c, lang, k in rows.all()]
