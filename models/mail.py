"""Mailbox cursors and stored attachments.

A cursor is UIDVALIDITY+UID per mailbox: after a UIDVALIDITY change every message is
looked at again and the content-hash dedupe of the inbound table keeps it from being
handled twice. Attachments are stored by content hash outside the database; these rows
say which message and which case each belongs to.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class MailCursor(Base):
    __tablename__ = "mail_cursors"

    mailbox: Mapped[str] = mapped_column(String(320), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StoredAttachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None, index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


async def get_cursor(session: AsyncSession, *, mailbox: str) -> MailCursor | None:
    return await session.get(MailCursor, mailbox)


async def save_cursor(
    session: AsyncSession, *, mailbox: str, uidvalidity: int, last_uid: int
) -> None:
    cursor = await session.get(MailCursor, mailbox)
    if cursor is None:
        session.add(MailCursor(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid))
    else:
        cursor.uidvalidity = uidvalidity
        cursor.last_uid = last_uid
    await session.flush()


async def attachments_of(session: AsyncSession, *, inbound_id: int) -> list[StoredAttachment]:
    stmt = select(StoredAttachment).where(StoredAttachment.inbound_id == inbound_id)
    return list((await session.execute(stmt)).scalars().all())
