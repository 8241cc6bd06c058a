"""Text messages stored but never handled: answered after a restart.

A webhook's message is normally stored, handled and committed in one transaction (the
group commit). When a group fails, each of its messages runs alone: stored and committed
first, then handled. A process that dies between those two commits leaves a stored row
that nobody handled, and the webhook got no 200. Twilio's retry, when configured, is
claimed like any repeat delivery and handled then. Without one, the message would wait
forever: so the outbox worker looks, at its start and every `EVERY` after, for SMS rows
unhandled for longer than `STALE` (long past Twilio's 15-second timeout and its quick
retries), handles each exactly as the webhook would have, and sends the reply through
the outbox (Twilio's REST API) as a `late_reply`.

Each row is claimed (`models.inbox.claim_inbound`, a row lock), so a Twilio retry
arriving meanwhile, or another worker's pass, sees it handled: the retry then gets no
second copy of the reply (`gateway.pipeline._replay` leaves late replies out), and no pass
handles it twice. Email needs none of this: a mail stays in the mailbox until it is
handled, and the poller reads it again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from gateway.metrics import ERRORS
from gateway.pipeline import InboundText, handle_text
from gateway.runtime import Runtime
from models.inbox import claim_inbound, mark_failed, send_later, unhandled_before
from models.messages import LATE_REPLY, OutboundMessage
from parsers.addresses import mask

log = logging.getLogger("citygate.resume")
STALE = timedelta(seconds=60)
EVERY = timedelta(seconds=30)


async def resume_unhandled(runtime: Runtime, *, stale: timedelta = STALE, limit: int = 100) -> int:
    """Handle the SMS rows unhandled for longer than `stale`; how many were handled."""
    async with runtime.sessions() as session:
        before = runtime.clock() - stale
        ids = await unhandled_before(session, channel="sms", before=before, limit=limit)
    handled = 0
    for inbound_id in ids:
        try:
            handled += await _resume(runtime, inbound_id)
        except Exception:
            ERRORS.labels(part="handler").inc()
            log.exception("resuming message %s failed", inbound_id)
            await _give_up(runtime, inbound_id)
            handled += 1
    return handled


async def _resume(runtime: Runtime, inbound_id: int) -> bool:
    async with runtime.sessions.begin() as session:
        row = await claim_inbound(session, inbound_id=inbound_id, delivery=False)
        if row.handled_at is not None:
            return False  # a retry or another pass was first
        msg = InboundText(
            channel=row.channel,
            provider_id=row.provider_id,
            from_address=row.from_address,
            body=row.body,
            to_address=row.to_address,
            raw=dict(row.raw or {}),
        )
        sent = await handle_text(session, runtime, row, msg)
        ids = [m.outbound_id for m in sent if m.outbound_id is not None]
        await send_later(session, outbound_ids=ids, now=runtime.clock())
        row.outcome = f"{row.outcome or 'handled'}; answered after a restart"[:200]
    log.info("sms from %s answered after a restart (message %s)", mask(msg.from_address), row.id)
    return True


async def _give_up(runtime: Runtime, inbound_id: int) -> None:
    """A message whose handler fails: marked, and the citizen told (as the webhook would)."""
    text = runtime.config.text("internal_error", runtime.config.default_language)
    async with runtime.sessions.begin() as session:
        row, marked = await mark_failed(
            session,
            inbound_id=inbound_id,
            error=f"handler failed after a restart; see the log for message {inbound_id}",
            reply_text=text,
            now=runtime.clock(),
        )
        if not marked:
            return
        session.add(
            OutboundMessage(
                channel=row.channel,
                contact_id=row.contact_id,
                inbound_id=row.id,
                to_address=row.from_address,
                body=text,
                kind=LATE_REPLY,
                status="pending",
                next_attempt_at=runtime.clock(),
            )
        )
