"""The inbound path's writes: a message stored before it is handled (alone, or a whole
group in one statement), claimed for a repeat delivery, its inline reply recorded and
the message marked handled, and the reply already given found again for a retry.

The statements here run for every message, so they are built once with bind parameters
(building a statement and its cache key costs more than running it) and, where a group
allows, run once for the group (see `gateway.group_commit`); a group's rows, replies,
marks and limits go around SQLAlchemy's execution, straight to asyncpg or to SQLite's
thread (`models.pg_direct`, `models.sqlite_direct`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from models import pg_direct, sqlite_direct
from models.base import InsertNew, per_transaction, utcnow
from models.contacts import Contact
from models.messages import LATE_REPLY, InboundMessage, OutboundMessage, note_sent
from models.pg_direct import Direct


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
_STORE = InsertNew(InboundMessage, "channel", "provider_id")


async def store_inbound_group(
    session: AsyncSession, messages: Sequence[NewInbound]
) -> list[tuple[InboundMessage, bool]]:
    """`store_inbound` for a whole group in one statement: (row, is_new) per message, in
    order. A provider id already stored, or twice in the group, is new only once."""
    now = utcnow()
    values = [m._asdict() for m in messages]
    direct = await pg_direct.store_inbound(session, values, now)
    if direct is None:
        direct = await sqlite_direct.store_inbound(session, values, now)
    if direct is not None:
        inserted = direct
    else:
        params = [{**v, "attempts": 1, "received_at": now} for v in values]
        rows = (await session.scalars(_STORE.on(session), params)).all()
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
# One INSERT … VALUES (…), (…) RETURNING for many rows. Not `sort_by_parameter_order`:
# without a sentinel column SQLAlchemy then inserts SQLite's rows one by one; the rows
# are matched to their values by (inbound message, text) instead (`_insert_replies`).
_INSERT_REPLY = insert(_OUTBOUND).returning(
    _OUTBOUND.c.id, _OUTBOUND.c.inbound_id, _OUTBOUND.c.body
)
_INBOUND = cast(Table, InboundMessage.__table__)
_MARK_HANDLED = (
    update(_INBOUND)
    .where(_INBOUND.c.id == bindparam("inbound_id"))
    .values(
        contact_id=bindparam("contact_id"),
        command=bindparam("command"),
        reply_text=bindparam("reply_text"),
        handled_at=bindparam("handled_at"),
        outcome=bindparam("outcome"),
    )
)
_DIRECT_MARKS = Direct(
    _MARK_HANDLED, ["inbound_id", "contact_id", "command", "reply_text", "handled_at", "outcome"]
)


async def record_reply(
    session: AsyncSession,
    row: InboundMessage,
    *,
    contact_id: int,
    command: str | None,
    parts: Sequence[str],
    now: datetime,
    outcome: str = "handled",
) -> list[int]:
    """Store the reply given inline to `row` (accepted: it leaves in the HTTP answer) and
    mark the row handled; returns the reply rows' ids, in order. Core statements, not the
    unit of work: this runs for every message. Inside `defer_writes` the rows and marks
    of a whole group are written together by `write_deferred`, and the list returned is
    filled then."""
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
    changes = {
        "contact_id": contact_id,
        "command": command,
        "reply_text": "\n\n".join(parts),
        "handled_at": now,
        "outcome": outcome,
    }
    for key, value in changes.items():
        set_committed_value(row, key, value)
    ids: list[int] = []
    deferred = session.info.get(_DEFERRED)
    if isinstance(deferred, _Deferred):
        deferred.replies.append((values, ids))
        deferred.marks.append({"inbound_id": row.id, **changes})
        return ids
    ids.extend(await _insert_replies(session, values))
    await session.execute(_MARK_HANDLED, {"inbound_id": row.id, **changes})
    return ids


async def _insert_replies(session: AsyncSession, values: list[dict[str, Any]]) -> list[int]:
    """Insert reply rows in one statement; their ids in the order of `values`. Rows are
    matched by (inbound message, text); two equal texts of one message are the same
    reply, and take their ids in ascending order."""
    if not values:
        return []
    made: defaultdict[tuple[int, str], list[int]] = defaultdict(list)
    direct = await pg_direct.insert_replies(session, values)
    if direct is None:
        direct = await sqlite_direct.insert_replies(session, values)
    inserted: list[tuple[int, int, str]] = direct if direct is not None else []
    if direct is None:
        alike: defaultdict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for value in values:  # one INSERT per set of columns (an SMS reply's, an email's)
            alike[tuple(sorted(value))].append(value)
        for rows in alike.values():
            result = await session.execute(_INSERT_REPLY, rows)
            inserted.extend((id_, inbound_id, body) for id_, inbound_id, body in result)
    for id_, inbound_id, body in inserted:
        made[(inbound_id, body)].append(id_)
    for ids in made.values():
        ids.sort(reverse=True)
    return [made[(v["inbound_id"], v["body"])].pop() for v in values]


async def queue_mail_reply(
    session: AsyncSession,
    row: InboundMessage,
    *,
    contact_id: int,
    to_address: str,
    body: str,
    message_id: str,
    case_id: int | None,
    payload: str,
    now: datetime,
) -> list[int]:
    """The outbox row of an email reply to `row` (pending: the outbox sends it), counted
    for the address's reply caps (`models.messages.note_sent`). Inside `defer_writes` it
    is kept for the group's one INSERT of replies and the list returned gets its id
    then; at once otherwise."""
    values = {
        "channel": "email",
        "contact_id": contact_id,
        "inbound_id": row.id,
        "to_address": to_address,
        "body": body,
        "kind": "reply",
        "status": "pending",
        "message_id": message_id,
        "case_id": case_id,
        "payload": payload,
        "next_attempt_at": now,
        "created_at": now,
    }
    note_sent(session, channel="email", address=to_address)
    ids: list[int] = []
    deferred = session.info.get(_DEFERRED)
    if isinstance(deferred, _Deferred):
        deferred.replies.append(([values], ids))
        return ids
    ids.extend(await _insert_replies(session, [values]))
    return ids


_DEFERRED = per_transaction("citygate.deferred_writes")


class _Deferred:
    """A group's reply rows (with the id lists to fill), "handled" marks and senders'
    abuse-limit columns, unwritten."""

    def __init__(self) -> None:
        self.replies: list[tuple[list[dict[str, Any]], list[int]]] = []
        self.marks: list[dict[str, Any]] = []
        self.limits: dict[int, dict[str, Any]] = {}


def defer_writes(session: AsyncSession) -> None:
    """From now on `record_reply` keeps its rows and marks for `write_deferred`: one
    INSERT for a group's replies and one executemany for its marks, instead of two
    statements a message."""
    session.info[_DEFERRED] = _Deferred()


async def write_deferred(session: AsyncSession) -> None:
    """Write what was kept so far (before anything reads the inbound or reply rows, and
    before the commit); each kept id list gets its rows' ids."""
    deferred = session.info.get(_DEFERRED)
    if not isinstance(deferred, _Deferred):
        return
    session.info[_DEFERRED] = _Deferred()
    values = [v for rows, _ids in deferred.replies for v in rows]
    ids = iter(await _insert_replies(session, values))
    for rows, kept in deferred.replies:
        kept.extend(next(ids) for _ in rows)
    # Each an executemany straight to asyncpg or SQLite (`models.pg_direct`).
    if deferred.marks and not await _DIRECT_MARKS.run_many(session, deferred.marks):
        await session.execute(_MARK_HANDLED, deferred.marks)
    limits = list(deferred.limits.values())
    if limits:
        now = utcnow()  # `updated_at`, which SQLAlchemy's own execution fills in
        if not await _DIRECT_LIMITS.run_many(session, [{**r, "updated_at": now} for r in limits]):
            await session.execute(_KEEP_LIMITS, limits)


_CONTACTS = cast(Table, Contact.__table__)
# A contact's abuse-limit columns (handlers.limits), written together.
LIMIT_COLUMNS = ("allowance", "allowance_at", "limited_at", "failed_lookups", "failed_lookups_at")
_KEEP_LIMITS = (
    update(_CONTACTS)
    .where(_CONTACTS.c.id == bindparam("contact_id"))
    .values({name: bindparam(name) for name in LIMIT_COLUMNS})
)
_DIRECT_LIMITS = Direct(_KEEP_LIMITS, ["contact_id", *LIMIT_COLUMNS, "updated_at"])


async def keep_limits(session: AsyncSession, contact: Contact, **changes: Any) -> None:
    """Change a contact's abuse-limit columns (`LIMIT_COLUMNS`): inside `defer_writes`
    with the group's other writes (one executemany; a contact's last state wins), at
    once otherwise. The contact object shows the change straight away; the unit of work
    never sees it (a flush per message otherwise)."""
    unknown = set(changes) - set(LIMIT_COLUMNS)
    if unknown:
        raise ValueError(f"not a limit column: {sorted(unknown)}")
    if all(getattr(contact, key) == value for key, value in changes.items()):
        return
    for key, value in changes.items():
        set_committed_value(contact, key, value)
    row = {"contact_id": contact.id, **{name: getattr(contact, name) for name in LIMIT_COLUMNS}}
    row["failed_lookups"] = row["failed_lookups"] or 0
    deferred = session.info.get(_DEFERRED)
    if isinstance(deferred, _Deferred):
        deferred.limits[contact.id] = row
        return
    await session.execute(_KEEP_LIMITS, row)


async def find_replies(session: AsyncSession, *, inbound_id: int) -> list[OutboundMessage]:
    """The reply messages given to an inbound message, in order: inline (`reply`) or,
    for a message handled after a restart, sent by the outbox (`late_reply`)."""
    stmt = (
        select(OutboundMessage)
        .where(
            OutboundMessage.inbound_id == inbound_id,
            OutboundMessage.kind.in_(("reply", LATE_REPLY)),
        )
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


async def mark_failed(
    session: AsyncSession, *, inbound_id: int, error: str, reply_text: str, now: datetime
) -> tuple[InboundMessage, bool]:
    """Record on `inbound_id` that its handler failed, answered with `reply_text`, unless
    another delivery handled it meanwhile. The row (claimed), and whether it was marked."""
    row = await claim_inbound(session, inbound_id=inbound_id, delivery=False)
    if row.handled_at is not None:
        return row, False
    row.error, row.reply_text, row.handled_at = error, reply_text, now
    return row, True


async def unhandled_before(
    session: AsyncSession, *, channel: str, before: datetime, limit: int
) -> list[int]:
    """Inbound rows of `channel` stored before `before` and never handled, oldest first
    (`gateway.resume`; the partial index `ix_inbound_unhandled` finds them)."""
    stmt = (
        select(InboundMessage.id)
        .where(
            InboundMessage.handled_at.is_(None),
            InboundMessage.received_at < before,
            InboundMessage.channel == channel,
        )
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def send_later(session: AsyncSession, *, outbound_ids: Sequence[int], now: datetime) -> None:
    """Reply rows recorded for an inline answer, handed to the outbox instead: kind
    `late_reply`, due now (a message handled after a restart has no HTTP answer)."""
    if outbound_ids:
        await session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id.in_(outbound_ids))
            .values(kind=LATE_REPLY, status="pending", next_attempt_at=now)
        )
