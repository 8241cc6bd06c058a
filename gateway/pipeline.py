"""The channel-neutral path of one inbound message: store, dedupe, parse, handle, record.

Every edge (Twilio webhook, simulator, later the email poller) hands an `InboundText`
to `process`. The message is committed before anything else happens; a second delivery
of the same provider id gets the reply already given and changes nothing. Messages of
one contact are handled one at a time (the contact row is locked), so two texts sent
together can neither skip a form step nor file a case twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.metrics import INBOUND, REPLIES
from gateway.runtime import Runtime
from handlers.base import Context, Reply
from handlers.registry import dispatch, reply_language, with_language
from models.base import utcnow
from models.contacts import get_or_create_contact
from models.messages import (
    InboundMessage,
    OutboundMessage,
    claim_inbound,
    find_replies,
    store_inbound,
)
from parsers.addresses import mask
from parsers.grammar import parse

log = logging.getLogger("citygate.pipeline")


@dataclass(frozen=True)
class InboundText:
    channel: str
    provider_id: str
    from_address: str
    body: str
    to_address: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyMessage:
    text: str
    outbound_id: int | None


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    messages: tuple[ReplyMessage, ...]
    reply_key: str | None
    duplicate: bool

    @property
    def reply(self) -> str:
        """All reply messages as one text (for the simulator and logs)."""
        return "\n\n".join(m.text for m in self.messages)


def _storable(value: Any) -> Any:
    """NUL characters removed: no database text column may hold them (PostgreSQL refuses)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


Handle = Callable[
    [AsyncSession, Runtime, InboundMessage, "InboundText"],
    Awaitable[tuple[Reply | None, tuple[ReplyMessage, ...], str | None]],
]


async def process(runtime: Runtime, msg: InboundText, handle: Handle | None = None) -> Outcome:
    """Handle one inbound message exactly once and return the reply to give.

    `handle` runs inside the transaction that holds the message's row; the default
    parses the text as a command and answers inline (SMS, the simulator).
    """
    msg = InboundText(
        channel=msg.channel,
        provider_id=_storable(msg.provider_id),
        from_address=_storable(msg.from_address),
        body=_storable(msg.body),
        to_address=_storable(msg.to_address),
        raw=_storable(msg.raw),
    )
    async with runtime.sessions.begin() as session:
        row, is_new = await store_inbound(
            session,
            channel=msg.channel,
            provider_id=msg.provider_id,
            from_address=msg.from_address,
            to_address=msg.to_address,
            body=msg.body,
            raw=msg.raw,
        )
        inbound_id = row.id
    INBOUND.labels(channel=msg.channel, duplicate=str(not is_new).lower()).inc()
    try:
        async with runtime.sessions.begin() as session:
            row = await claim_inbound(session, inbound_id=inbound_id)
            if row.handled_at is not None:
                log.info("repeat delivery of %s message %s answered again", msg.channel, row.id)
                earlier = await find_replies(session, inbound_id=inbound_id)
                messages = tuple(ReplyMessage(o.body, o.id) for o in earlier)
                if not messages and row.reply_text:
                    messages = (ReplyMessage(row.reply_text, None),)
                return Outcome(inbound_id, messages, None, duplicate=True)
            reply, sent, command = await (handle or _handle)(session, runtime, row, msg)
    except Exception:
        log.exception("handling %s message %s failed", msg.channel, inbound_id)
        text = runtime.config.text("internal_error", runtime.config.default_language)
        async with runtime.sessions.begin() as session:
            row = await claim_inbound(session, inbound_id=inbound_id)
            row.error = f"handler failed; see the log for message {inbound_id}"
            row.reply_text = text
            row.handled_at = utcnow()
        REPLIES.labels(channel=msg.channel, key="internal_error").inc()
        return Outcome(inbound_id, (ReplyMessage(text, None),), "internal_error", False)
    key = reply.key if reply is not None else None
    REPLIES.labels(channel=msg.channel, key=key or "none").inc()
    log.info(
        "%s from %s: %s -> %s",
        msg.channel,
        mask(msg.from_address),
        command or "unknown",
        key or "no reply",
    )
    return Outcome(inbound_id, sent, key, duplicate=False)


async def _handle(
    session: AsyncSession, runtime: Runtime, row: InboundMessage, msg: InboundText
) -> tuple[Reply | None, tuple[ReplyMessage, ...], str | None]:
    """Parse and dispatch inside the caller's transaction; record the reply on the row."""
    contact = await get_or_create_contact(
        session, channel=msg.channel, address=msg.from_address, lock=True
    )
    table = await runtime.keyword_table(session)
    command = parse(msg.body, table)
    ctx = Context(
        session=session,
        texts=runtime.config,
        contact=contact,
        language=runtime.config.default_language,
        keywords=table,
        now=runtime.clock(),
    )
    ctx = with_language(ctx, reply_language(command, ctx, runtime.config.default_language))
    reply = await dispatch(command, ctx)
    outbound = [
        OutboundMessage(
            channel=msg.channel,
            contact_id=contact.id,
            inbound_id=row.id,
            to_address=msg.from_address,
            body=part,
            kind="reply",
            status="accepted",
        )
        for part in reply.parts
    ]
    session.add_all(outbound)
    row.contact_id = contact.id
    row.command = command.command
    row.reply_text = "\n\n".join(reply.parts)
    row.handled_at = ctx.now
    await session.flush()
    sent = tuple(ReplyMessage(o.body, o.id) for o in outbound)
    return reply, sent, command.command
