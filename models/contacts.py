"""Contacts: one row per channel address (E.164 phone or lower-cased email)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Boolean, Float, Integer, String, UniqueConstraint, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, InsertNew, UTCDateTime, per_transaction, utcnow


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320))
    language: Mapped[str | None] = mapped_column(String(8), default=None)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    bounces: Mapped[int] = mapped_column(Integer, default=0)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Abuse limits (handlers.limits): the sender's message bucket, when its last refusal
    # was announced, and its failed lookups since the window's first one.
    allowance: Mapped[float | None] = mapped_column(Float, default=None)
    allowance_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    limited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    failed_lookups: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_lookups_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# Built once: a statement made per call costs more than running it (its cache key).
_FIND = select(Contact).where(
    Contact.channel == bindparam("channel"), Contact.address == bindparam("address")
)
_FIND_LOCKED = _FIND.with_for_update()
# session.info: (channel, address) -> Contact | None, what this transaction read ahead
_READ = per_transaction("citygate.contacts_read")


def remember_contacts(
    session: AsyncSession, *, channel: str, addresses: Sequence[str], found: Sequence[Contact]
) -> None:
    """The contacts of `addresses` read (and locked) ahead in this transaction, `found`
    those that exist: for the rest of the transaction `find_contact` answers these
    addresses from them, and `get_or_create_contact` inserts the unknown ones without
    looking again (see `models.conversations.read_senders`)."""
    read: dict[tuple[str, str], Contact | None] = session.info.setdefault(_READ, {})
    read.update(((channel, a), None) for a in addresses)
    for contact in found:
        read[(contact.channel, contact.address)] = contact


async def find_contact(
    session: AsyncSession, *, channel: str, address: str, lock: bool = False
) -> Contact | None:
    read = session.info.get(_READ)
    if read is not None and (channel, address) in read:
        known: Contact | None = read[(channel, address)]
        return known  # locked when read, held till the transaction ends
    stmt = _FIND_LOCKED if lock else _FIND
    params = {"channel": channel, "address": address}
    return (await session.execute(stmt, params)).scalar_one_or_none()


async def get_or_create_contact(
    session: AsyncSession, *, channel: str, address: str, lock: bool = False
) -> Contact:
    """The contact for a normalised address, created on first contact (race-safe).

    With `lock`, the row stays locked until the transaction ends (PostgreSQL; SQLite
    serialises writers anyway), so two messages from one contact are handled in turn.
    """
    found = await find_contact(session, channel=channel, address=address, lock=lock)
    if found is not None:
        return found
    read = session.info.get(_READ, {})
    params = {"channel": channel, "address": address}
    contact: Contact | None = (await session.scalars(_CREATE.on(session), params)).first()
    if contact is None:  # another transaction created it first: look it up in the table
        remembered = read.pop((channel, address), False) is not False
        found = await find_contact(session, channel=channel, address=address, lock=lock)
        assert found is not None
        if remembered:
            read[(channel, address)] = found  # (locked now, when `lock`)
        return found
    if (channel, address) in read:
        read[(channel, address)] = contact
    session.info.setdefault(CREATED, set()).add(contact.id)
    return contact


# session.info: the ids of the contacts this transaction created
CREATED = per_transaction("citygate.contacts_created")


# One statement, no savepoint: a contact created at the same moment by another
# transaction is left alone (PostgreSQL waits for that transaction first) and looked up.
_CREATE = InsertNew(Contact, "channel", "address")


def set_opt_out(contact: Contact, *, opted_out: bool) -> None:
    contact.opted_out = opted_out
    contact.opted_out_at = utcnow() if opted_out else None


def set_language(contact: Contact, *, language: str) -> None:
    contact.language = language


async def record_bounce(session: AsyncSession, *, channel: str, address: str) -> None:
    """Count a delivery failure against the contact at `address`, if we know it."""
    contact = await find_contact(session, channel=channel, address=address)
    if contact is not None:
        contact.bounces += 1
        contact.bounced_at = utcnow()


async def find_contacts(
    session: AsyncSession, addresses: Sequence[tuple[str, str]]
) -> list[Contact]:
    """The contacts known at any of the (channel, address) pairs."""
    if not addresses:
        return []
    stmt = select(Contact).where(
        or_(*[(Contact.channel == c) & (Contact.address == a) for c, a in addresses])
    )
    return list((await session.execute(stmt)).scalars().all())
