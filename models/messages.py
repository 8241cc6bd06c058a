"""Inbound and outbound messages.

Every inbound message is stored first under its provider id (Twilio's MessageSid, an
email's Message-ID); a retry finds its row and the reply already given. Outbound rows
record what we sent and what the provider said of its delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from models.base import Base, UTCDateTime, utcnow

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
    __table_args__ = (UniqueConstraint("channel", "provider_id"),)

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


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    to_address: Mapped[str] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="reply")  # reply, notification
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


class NewInbound(NamedTuple):
    """An inbound message as it is stored before it is handled."""

    channel: str
    provider_id: str
    from_address: str
    to_address: str | None
    body: str
    raw: dict[str, Any]


async def find_inbound(
    session: AsyncSession, *, channel: str, provider_id: str
) -> InboundMessage | None:
    stmt = select(InboundMessage).where(
        InboundMessage.channel == channel, InboundMessage.provider_id == provider_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def store_inbound(session: AsyncSession, message: NewInbound) -> tuple[InboundMessage, bool]:
    """Insert the message unless its provider id is known; returns (row, is_new).

    One statement in the common case (INSERT … ON CONFLICT DO NOTHING RETURNING), so a
    repeat delivery racing the first can neither fail nor insert twice.
    """
    return (await store_inbound_group(session, [message]))[0]


# Built once (a statement made per call costs more than running it); a group's rows go
# in one INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING RETURNING (insertmanyvalues).
_STORE_PG = (
    pg_insert(InboundMessage)
    .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    .returning(InboundMessage)
)
_STORE_SQLITE = (
    sqlite_insert(InboundMessage)
    .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    .returning(InboundMessage)
)


async def store_inbound_group(
    session: AsyncSession, messages: Sequence[NewInbound]
) -> list[tuple[InboundMessage, bool]]:
    """`store_inbound` for a whole group in one statement: (row, is_new) per message, in
    order. A provider id already stored, or twice in the group, is new only once."""
    postgres = session.get_bind().dialect.name == "postgresql"
    stmt = _STORE_PG if postgres else _STORE_SQLITE
    now = utcnow()
    params = [{**m._asdict(), "attempts": 1, "received_at": now} for m in messages]
    rows = (await session.scalars(stmt, params)).all()
    inserted = {(r.channel, r.provider_id): r for r in rows}
    stored: list[tuple[InboundMessage, bool]] = []
    for m in messages:
        row = inserted.pop((m.channel, m.provider_id), None)
        if row is not None:
            stored.append((row, True))
            continue
        existing = await find_inbound(session, channel=m.channel, provider_id=m.provider_id)
        assert existing is not None
        stored.append((existing, False))
    return stored


# Built once: a statement made per call costs more than running it (its cache key).
_OUTBOUND = cast(Table, OutboundMessage.__table__)
_INSERT_REPLY = insert(_OUTBOUND).returning(_OUTBOUND.c.id, sort_by_parameter_order=True)
_INBOUND = cast(Table, InboundMessage.__table__)
_MARK_HANDLED = (
    update(_INBOUND)
    .where(_INBOUND.c.id == bindparam("inbound_id"))
    .values(
        contact_id=bindparam("contact_id"),
        command=bindparam("command"),
        reply_text=bindparam("reply_text"),
        handled_at=bindparam("handled_at"),
    )
)


async def record_reply(
    session: AsyncSession,
    row: InboundMessage,
    *,
    contact_id: int,
    command: str | None,
    parts: Sequence[str],
    now: datetime,
) -> list[int]:
    """Store the reply given inline to `row` (accepted: it leaves in the HTTP answer) and
    mark the row handled; returns the reply rows' ids, in order. Core statements, not the
    unit of work: this runs for every message. Inside `defer_handled_marks` the marks of
    a whole group are written together by `write_handled_marks`."""
    ids: list[int] = []
    if parts:
        values = [
            {
                "channel": row.channel,
                "contact_id": contact_id,
                "inbound_id": row.id,
                "to_address": row.from_address,
                "body": part,
                "kind": "reply",
                "status": "accepted",
            }
            for part in parts
        ]
        ids = list((await session.execute(_INSERT_REPLY, values)).scalars().all())
    changes = {
        "contact_id": contact_id,
        "command": command,
        "reply_text": "\n\n".join(parts),
        "handled_at": now,
    }
    deferred = session.info.get(_DEFERRED)
    if isinstance(deferred, list):
        deferred.append({"inbound_id": row.id, **changes})
    else:
        await session.execute(_MARK_HANDLED, {"inbound_id": row.id, **changes})
    for key, value in changes.items():
        set_committed_value(row, key, value)
    return ids


_DEFERRED = "citygate.deferred_handled_marks"


def defer_handled_marks(session: AsyncSession) -> None:
    """From now on `record_reply` keeps its "handled" marks for `write_handled_marks`
    (one executemany for a group instead of one UPDATE a message)."""
    session.info[_DEFERRED] = []


async def write_handled_marks(session: AsyncSession) -> None:
    """Write the marks kept so far (before anything reads inbound rows, and before the
    commit)."""
    deferred = session.info.get(_DEFERRED)
    if isinstance(deferred, list) and deferred:
        session.info[_DEFERRED] = []
        await session.execute(_MARK_HANDLED, deferred)


async def find_replies(session: AsyncSession, *, inbound_id: int) -> list[OutboundMessage]:
    """The reply messages given to an inbound message, in order."""
    stmt = (
        select(OutboundMessage)
        .where(OutboundMessage.inbound_id == inbound_id, OutboundMessage.kind == "reply")
        .order_by(OutboundMessage.id)
    )
    return list((await session.execute(stmt)).scalars().all())


async def claim_inbound(
    session: AsyncSession, *, inbound_id: int, delivery: bool = True
) -> InboundMessage:
    """Take the write lock on an inbound row, then read it fresh.

    The UPDATE serialises two deliveries of one message on both SQLite (database
    write lock) and PostgreSQL (row lock): the second sees `handled_at` set. With
    `delivery`, the claim is for another delivery of the message and `attempts`
    (deliveries seen, the first one counted when the row is stored) goes up.
    """
    stmt = (
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id)
        .values(attempts=InboundMessage.attempts + (1 if delivery else 0))
        .returning(InboundMessage)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one()


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


async def count_sent_since(
    session: AsyncSession, *, channel: str, address: str, since: datetime, recent: datetime
) -> tuple[int, int]:
    """Messages queued to `address` on `channel` since `since`, and since `recent` (a
    later time), for the reply caps: one query for both windows."""
    params = {"channel": channel, "address": address, "since": since, "recent": recent}
    row = (await session.execute(_SENT_SINCE, params)).one()
    return int(row[0] or 0), int(row[1] or 0)


async def claim_due(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int
) -> list[int]:
    """Lease due outbox rows to this worker (`FOR UPDATE SKIP LOCKED` on PostgreSQL): a
    row whose lease runs out is due again, so a crashed worker's rows are taken over."""
    stmt = (
        select(OutboundMessage)
        .where(
            OutboundMessage.status.in_(("pending", "sending")),
            OutboundMessage.channel.in_(("email", "sms")),
            OutboundMessage.next_attempt_at <= now,
        )
        .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list((await session.execute(stmt)).scalars().all())
    for row in rows:
        row.status = "sending"
        row.attempts += 1
        row.next_attempt_at = now + lease
    return [row.id for row in rows]
