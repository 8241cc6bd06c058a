"""Conversations: the one open multi-step exchange per contact (a service menu or a form).

A conversation has an expiry; an expired one is removed the next time the contact
writes, and the caller is told so that the reply can say the form expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # menu, form
    service: Mapped[str | None] = mapped_column(String(64), default=None)
    step: Mapped[int] = mapped_column(Integer, default=0)  # field index; == len(fields): summary
    page: Mapped[int] = mapped_column(Integer, default=0)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    editing: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# Built once: a statement made per call costs more than running it (its cache key).
_FIND = select(Conversation).where(Conversation.contact_id == bindparam("contact_id"))
_FIND_MANY = select(Conversation).where(
    Conversation.contact_id.in_(bindparam("contact_ids", expanding=True))
)
_READ = "citygate.conversations_read"  # session.info: contact id -> Conversation | None


async def read_conversations(session: AsyncSession, *, contact_ids: Sequence[int]) -> None:
    """Read the conversations of many contacts in one statement; each contact's first
    `find_conversation` in this transaction answers from it (later ones look again, as
    a message may have opened or closed one since)."""
    ids = sorted(set(contact_ids))
    read: dict[int, Conversation | None] = session.info.setdefault(_READ, {})
    read.update((i, None) for i in ids)
    for found in (await session.execute(_FIND_MANY, {"contact_ids": ids})).scalars():
        read[found.contact_id] = found


async def find_conversation(
    session: AsyncSession, *, contact_id: int, now: datetime
) -> tuple[Conversation | None, bool]:
    """(the open conversation or None, whether an expired one was just removed)."""
    read = session.info.get(_READ)
    if read is not None and contact_id in read:
        found = read.pop(contact_id)
    else:
        found = (await session.execute(_FIND, {"contact_id": contact_id})).scalar_one_or_none()
    if found is None:
        return None, False
    if found.expires_at <= now:
        await session.delete(found)
        await session.flush()
        return None, True
    return found, False


async def open_conversation(
    session: AsyncSession,
    *,
    contact_id: int,
    kind: str,
    language: str,
    expires_at: datetime,
    service: str | None = None,
) -> Conversation:
    """Start a conversation, replacing any the contact had open."""
    stmt = select(Conversation).where(Conversation.contact_id == contact_id)
    old = (await session.execute(stmt)).scalar_one_or_none()
    if old is not None:
        await session.delete(old)
        await session.flush()
    conversation = Conversation(
        contact_id=contact_id,
        kind=kind,
        service=service,
        step=0,
        page=0,
        answers={},
        editing=False,
        language=language,
        expires_at=expires_at,
    )
    session.add(conversation)
    await session.flush()
    return conversation


async def close_conversation(session: AsyncSession, conversation: Conversation) -> None:
    await session.delete(conversation)
    await session.flush()
