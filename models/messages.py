"""Inbound and outbound messages.

Every inbound message is stored first under its provider id (Twilio's MessageSid, an
email's Message-ID); a retry finds its row and the reply already given (the writes of
that path are in `models.inbox`). Outbound rows record what we sent and what the
provider said of its delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, per_transaction, utcnow

# Delivery statuses in the order they can happen; a late callback never moves back.
DELIVERY_ORDER = {
    "accepted": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "receiving": 4,
    "received": 5,
    "delivered": 6,
    "read": 7,
    "undelivered": 8,
    "failed": 8,
    "canceled": 8,
}


class InboundMessage(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_id"),
        # the few rows stored but not handled (gateway.resume), found without a scan
        Index(
            "ix_inbound_unhandled",
            "received_at",
            postgresql_where=text("handled_at IS NULL"),
            sqlite_where=text("handled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(String(255))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    from_address: Mapped[str] = mapped_column(String(320))
    to_address: Mapped[str | None] = mapped_column(String(320), default=None)
    body: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    command: Mapped[str | None] = mapped_column(String(32), default=None)
    reply_text: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # email: the Message-ID header, a hash of sender, date, subject and body, the raw
    # message's content address, what became of it, and the case it belongs to
    message_id: Mapped[str | None] = mapped_column(String(998), default=None, index=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    raw_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    outcome: Mapped[str | None] = mapped_column(String(200), default=None)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


# The kind of a reply sent by the outbox because its message was handled after a restart
# (gateway.resume), not answered inline.
LATE_REPLY = "late_reply"


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    to_address: Mapped[str] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text)
    # reply (inline, in the TwiML), late_reply (gateway.resume, by the outbox), notification
    kind: Mapped[str] = mapped_column(String(16), default="reply")
    provider_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    error_code: Mapped[str | None] = mapped_column(String(32), default=None)
    # the outbox: what is still to be sent, when to try next, and why it failed
    message_id: Mapped[str | None] = mapped_column(String(998), default=None, index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), default=None)
    payload: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


async def record_delivery_status(
    session: AsyncSession,
    *,
    outbound_id: int | None,
    provider_id: str,
    status: str,
    error_code: str | None,
) -> OutboundMessage | None:
    """Apply a provider's delivery callback; statuses never move backwards."""
    row: OutboundMessage | None = None
    if outbound_id is not None:
        row = await session.get(OutboundMessage, outbound_id)
    if row is None and provider_id:
        stmt = select(OutboundMessage).where(OutboundMessage.provider_id == provider_id)
        row = (await session.execute(stmt)).scalars().first()
    if row is None:
        return None
    if row.provider_id is None:
        row.provider_id = provider_id
    elif provider_id and row.provider_id != provider_id:
        return None
    if DELIVERY_ORDER.get(status, 0) >= DELIVERY_ORDER.get(row.status, 0):
        row.status = status
        row.error_code = error_code or row.error_code
    row.updated_at = utcnow()
    await session.flush()
    return row


async def conversation_of(session: AsyncSession, *, contact_ids: list[int]) -> list[dict[str, Any]]:
    """Every message to and from these contacts, oldest first, as plain dicts."""
    inbound = (
        (
            await session.execute(
                select(InboundMessage).where(InboundMessage.contact_id.in_(contact_ids))
            )
        )
        .scalars()
        .all()
    )
    outbound = (
        (
            await session.execute(
                select(OutboundMessage).where(OutboundMessage.contact_id.in_(contact_ids))
            )
        )
        .scalars()
        .all()
    )
    items = [
        {
            "direction": "in",
            "channel": m.channel,
            "at": m.received_at,
            "text": m.body,
            "command": m.command,
            "status": None,
        }
        for m in inbound
    ] + [
        {
            "direction": "out",
            "channel": m.channel,
            "at": m.created_at,
            "text": m.body,
            "command": None,
            "status": m.status,
        }
        for m in outbound
    ]
    return sorted(items, key=lambda item: item["at"])


async def cases_of_message_ids(
    session: AsyncSession, *, message_ids: list[str], tokens: list[str]
) -> list[int]:
    """Cases whose stored mail (ours or the citizen's) has one of these Message-IDs, or
    whose outgoing Message-ID carries one of these signed tokens; most recent id first."""
    found: list[int] = []
    clauses: list[ColumnElement[bool]] = (
        [OutboundMessage.message_id.in_(message_ids)] if message_ids else []
    )
    clauses += [OutboundMessage.message_id.contains(token) for token in tokens]
    if clauses:
        rows = await session.execute(
            select(OutboundMessage.case_id).where(
                or_(*clauses), OutboundMessage.case_id.is_not(None)
            )
        )
        found += [c for (c,) in rows.all() if c]
    if message_ids:
        rows = await session.execute(
            select(InboundMessage.case_id).where(
                InboundMessage.message_id.in_(message_ids), InboundMessage.case_id.is_not(None)
            )
        )
        found += [c for (c,) in rows.all() if c]
    return found


# Built once; `since` and `recent` bound per call (reply caps, one query for both windows).
_SENT_SINCE = select(
    func.count(),
    func.count().filter(OutboundMessage.created_at >= bindparam("recent", type_=UTCDateTime)),
).where(
    OutboundMessage.channel == bindparam("channel"),
    OutboundMessage.to_address == bindparam("address"),
    OutboundMessage.created_at >= bindparam("since", type_=UTCDateTime),
)


_SENT_BY_ADDRESS = (
    select(
        OutboundMessage.to_address,
        func.count(),
        func.count().filter(OutboundMessage.created_at >= bindparam("recent", type_=UTCDateTime)),
    )
    .where(
        OutboundMessage.channel == bindparam("channel"),
        OutboundMessage.to_address.in_(bindparam("addresses", expanding=True)),
        OutboundMessage.created_at >= bindparam("since", type_=UTCDateTime),
    )
    .group_by(OutboundMessage.to_address)
)
# The two windows of the email reply caps (settings mail_reply_cap_day, _10min).
CAP_DAY = timedelta(days=1)
CAP_RECENT = timedelta(minutes=10)
# session.info: (channel, address) -> (since a day, since ten minutes), counted in this
# transaction (read, then kept up to date by `note_sent`)
_SENT = per_transaction("citygate.sent_counts")


async def count_sent_since(
    session: AsyncSession, *, channel: str, address: str, since: datetime, recent: datetime
) -> tuple[int, int]:
    """Messages queued to `address` on `channel` since `since`, and since `recent` (a
    later time), for the reply caps: one query for both windows, once a transaction (the
    rows this transaction queues are counted by `note_sent`)."""
    known: dict[tuple[str, str], tuple[int, int]] = session.info.setdefault(_SENT, {})
    if (channel, address) not in known:
        params = {"channel": channel, "address": address, "since": since, "recent": recent}
        row = (await session.execute(_SENT_SINCE, params)).one()
        known[(channel, address)] = (int(row[0] or 0), int(row[1] or 0))
    return known[(channel, address)]


async def read_sent_counts(
    session: AsyncSession,
    *,
    channel: str,
    addresses: Sequence[str],
    since: datetime,
    recent: datetime,
) -> None:
    """`count_sent_since` of many addresses read ahead in one statement."""
    wanted = sorted(set(addresses))
    if not wanted:
        return
    params = {"channel": channel, "addresses": wanted, "since": since, "recent": recent}
    known: dict[tuple[str, str], tuple[int, int]] = session.info.setdefault(_SENT, {})
    known.update(((channel, a), (0, 0)) for a in wanted)
    for address, day, ten in (await session.execute(_SENT_BY_ADDRESS, params)).all():
        known[(channel, address)] = (int(day or 0), int(ten or 0))


def note_sent(session: AsyncSession, *, channel: str, address: str) -> None:
    """One more message queued to `address` in this transaction, for `count_sent_since`."""
    known: dict[tuple[str, str], tuple[int, int]] = session.info.get(_SENT, {})
    if (channel, address) in known:
        day, recent = known[(channel, address)]
        known[(channel, address)] = (day + 1, recent + 1)


async def claim_due(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int
) -> list[OutboundMessage]:
    """Lease due outbox rows to this worker: a row whose lease runs out is due again, so
    a crashed worker's rows are taken over. Returns the rows as leased, by id (usable
    after the commit: the sessions keep them).

    One `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`: on PostgreSQL
    workers skip each other's rows; on SQLite, where FOR UPDATE does not exist and a
    SELECT takes no lock, the single statement is what keeps two workers (`serve
    --workers 2`) from reading the same due rows and both sending them."""
    due = (
        select(OutboundMessage.id)
        .where(
            OutboundMessage.status.in_(("pending", "sending")),
            OutboundMessage.channel.in_(("email", "sms")),
            OutboundMessage.next_attempt_at <= now,
        )
        .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            attempts=OutboundMessage.attempts + 1,
            next_attempt_at=now + lease,
        )
        .returning(OutboundMessage)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    rows = list((await session.scalars(stmt)).all())
    return sorted(rows, key=lambda row: row.id)


# Built once: one statement records how a delivery attempt ended (no read before it).
_DELIVERED = (
    update(OutboundMessage)
    .where(OutboundMessage.id == bindparam("outbound_id"))
    .values(
        status=bindparam("status"),
        last_error=bindparam("last_error"),
        provider_id=func.coalesce(bindparam("provider_id"), OutboundMessage.provider_id),
        next_attempt_at=func.coalesce(bindparam("next_at"), OutboundMessage.next_attempt_at),
        sent_at=func.coalesce(bindparam("sent_at"), OutboundMessage.sent_at),
    )
    .execution_options(synchronize_session=False)
)


async def record_attempt(
    session: AsyncSession | AsyncConnection,
    *,
    outbound_id: int,
    status: str,
    last_error: str | None,
    provider_id: str | None = None,
    next_attempt_at: datetime | None = None,
    sent_at: datetime | None = None,
) -> None:
    """How one delivery attempt of an outbox row ended; the fields given as None keep
    their value, except the error, which is cleared. One Core statement: on a session, or
    on a connection the outbox keeps for its pass."""
    params = {
        "outbound_id": outbound_id,
        "status": status,
        "last_error": last_error,
        "provider_id": provider_id,
        "next_at": next_attempt_at,
        "sent_at": sent_at,
    }
    await session.execute(_DELIVERED, params)


async def outbox_rows(
    session: AsyncSession, *, statuses: Sequence[str], limit: int
) -> list[OutboundMessage]:
    """Outbound rows in any of `statuses`, newest first; inline SMS replies (answered in
    the TwiML) never pass through the outbox and are left out."""
    stmt = (
        select(OutboundMessage)
        .where(
            OutboundMessage.status.in_(statuses),
            or_(OutboundMessage.kind != "reply", OutboundMessage.channel == "email"),
        )
        .order_by(OutboundMessage.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    return list((await session.execute(stmt)).scalars().all())


async def failed_mail_rows(session: AsyncSession, *, limit: int) -> list[InboundMessage]:
    """Mail the poller moved to the failed folder, newest first."""
    stmt = (
        select(InboundMessage)
        .where(InboundMessage.channel == "email", InboundMessage.outcome == "failed")
        .order_by(InboundMessage.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    return list((await session.execute(stmt)).scalars().all())


async def messages_of_contact(
    session: AsyncSession, *, contact_id: int
) -> tuple[list[InboundMessage], list[OutboundMessage]]:
    """Everything a contact sent and was sent."""
    inbound = await session.execute(
        select(InboundMessage).where(InboundMessage.contact_id == contact_id)
    )
    outbound = await session.execute(
        select(OutboundMessage).where(OutboundMessage.contact_id == contact_id)
    )
    return list(inbound.scalars().all()), list(outbound.scalars().all())


async def outbox_summary(session: AsyncSession) -> dict[str, tuple[int, datetime | None, int]]:
    """Channel -> (messages waiting to be sent, when the oldest of them was made, dead
    letters), for the outbox series of /metrics."""
    waiting = OutboundMessage.status.in_(("pending", "sending"))
    stmt = (
        select(
            OutboundMessage.channel,
            func.count().filter(waiting),
            func.min(OutboundMessage.created_at).filter(waiting),
            func.count().filter(OutboundMessage.status == "dead"),
        )
        .where(OutboundMessage.status.in_(("pending", "sending", "dead")))
        .group_by(OutboundMessage.channel)
    )
    found: dict[str, tuple[int, datetime | None, int]] = {}
    for channel, count, oldest, dead in await session.execute(stmt):
        if isinstance(oldest, datetime) and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        found[channel] = (count, oldest, dead)
    return found
