"""The inbound path's writes: a message stored before it is handled (alone, or a whole
group in one statement), claimed for a repeat delivery, its inline reply recorded and
the message marked handled, and the reply already given found again for a retry.

The statements here run for every message, so they are built once with bind parameters
(building a statement and its cache key costs more than running it) and, where a group
allows, run once for the group (see `gateway.group_commit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from models.base import utcnow
from models.messages import InboundMessage, OutboundMessage


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
