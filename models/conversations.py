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

from models.base import Base, ForEither, UTCDateTime, per_transaction, utcnow
from models.contacts import CREATED, Contact, remember_contacts


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
# The senders of a group with their open conversations, the contacts locked (in id
# order, so two processes' groups wait for each other instead of deadlocking).
_SENDERS = ForEither(
    lambda address_listed: (
        select(Contact, Conversation)
        .outerjoin(Conversation, Conversation.contact_id == Contact.id)
        .where(Contact.channel == bindparam("channel"), address_listed)
        .order_by(Contact.id)
        .with_for_update(of=Contact)
    ),
    Contact.address,
    "addresses",
)
# session.info: contact id -> Conversation | None, what this transaction read ahead
_READ = per_transaction("citygate.conversations_read")


async def read_senders(
    session: AsyncSession, *, channel: str, addresses: Sequence[str]
) -> list[Contact]:
    """Read and lock the contacts of many addresses with their open conversations, in
    one statement. For the rest of the transaction `find_contact` answers these
    addresses from it (`models.contacts.remember_contacts`), and each contact's first
    `find_conversation` too (later ones look again: a message may have opened or closed
    one since). Returns the contacts that exist."""
    wanted = sorted(set(addresses))
    parameters = {"channel": channel, "addresses": wanted}
    rows = (await session.execute(_SENDERS.on(session), parameters)).all()
    contacts = [contact for contact, _conversation in rows]
    remember_contacts(session, channel=channel, addresses=wanted, found=contacts)
    read: dict[int, Conversation | None] = session.info.setdefault(_READ, {})
    for contact, conversation in rows:
        read[contact.id] = conversation
    return contacts


async def find_conversation(
    session: AsyncSession, *, contact_id: int, now: datetime
) -> tuple[Conversation | None, bool]:
    """(the open conversation or None, whether an expired one was just removed)."""
    read = session.info.get(_READ)
    if read is not None and contact_id in read:
        found = read.pop(contact_id)
    elif contact_id in session.info.get(CREATED, ()):
        return None, False  # a contact created in this transaction, no conversation opened
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
    # What was read ahead is old now (a safety net: every caller today looks with
    # `find_conversation` first, which already took it).
    session.info.get(_READ, {}).pop(contact_id, None)
    session.info.get(CREATED, set()).discard(contact_id)
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
    session.info.get(_READ, {}).pop(conversation.contact_id, None)
    await session.delete(conversation)
    await session.flush()
