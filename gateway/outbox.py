"""The outbox worker: sends what is owed to citizens, with retries and dead letters.

Email goes to the SMTP server, SMS to Twilio's REST API (its base URL from
CITYGATE_TWILIO_API_URL). Twilio's 21610 means the citizen opted out: the contact is
marked and the row becomes a dead letter saying so; 429, 20429 and 63018 are rate limits,
tried again later.

Rows are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL (one worker per row across
processes; SQLite has one writer anyway). A network error or a 4xx SMTP answer is tried
again with exponential backoff and jitter; a 5xx answer, or too many attempts, makes the
row a dead letter with its reason, for an operator to see and retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_string
from email.utils import parseaddr

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.metrics import ERRORS, OUTBOX_SENDS
from gateway.runtime import Runtime
from gateway.smtp_link import SmtpLink
from models.base import utcnow
from models.messages import OutboundMessage, claim_due, record_attempt
from parsers.addresses import mask
from parsers.mail_policy import SMTP_POLICY

log = logging.getLogger("citygate.outbox")
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=6)
LEASE = timedelta(minutes=5)


class PermanentFailure(Exception):
    """The receiving side said no for good (SMTP 5xx, Twilio 4xx): retrying cannot help."""


class OptedOut(PermanentFailure):
    """Twilio refused: the recipient has opted out (error 21610)."""


RATE_LIMIT_CODES = frozenset({20429, 63018})


async def send_sms(runtime: Runtime, row: OutboundMessage) -> str:
    """Send one SMS through Twilio's Messages API; returns Twilio's message SID."""
    from twilio.base.exceptions import TwilioRestException
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    from gateway.twilio_sms import status_callback

    settings = runtime.settings
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        raise RuntimeError("Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)")
    http = AsyncTwilioHttpClient(timeout=30)
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http,
    )
    client.api.base_url = settings.twilio_api_url.rstrip("/")
    callback = status_callback(settings.public_url, row.id) if settings.public_url else None
    try:
        message = await client.api.v2010.accounts(
            settings.twilio_account_sid
        ).messages.create_async(
            to=row.to_address,
            from_=settings.twilio_from_number,
            body=row.body,
            status_callback=callback,
        )
    except TwilioRestException as exc:
        if exc.code == 21610:
            raise OptedOut(f"21610 {exc.msg}") from None
        if exc.status == 429 or exc.code in RATE_LIMIT_CODES or exc.status >= 500:
            raise RuntimeError(f"Twilio {exc.status} {exc.code}: {exc.msg}") from None
        raise PermanentFailure(f"Twilio {exc.status} {exc.code}: {exc.msg}") from None
    finally:
        if http.session is not None:
            await http.session.close()
    return str(message.sid)


@dataclass(frozen=True)
class Delivery:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def backoff(attempts: int) -> timedelta:
    """Exponential delay with full jitter, capped."""
    ceiling = min(MAX_DELAY, BASE_DELAY * (2 ** min(attempts, 16)))
    return timedelta(seconds=random.uniform(ceiling.total_seconds() / 2, ceiling.total_seconds()))


async def send_email(runtime: Runtime, row: OutboundMessage, link: SmtpLink | None = None) -> None:
    """Hand one rendered message to the SMTP server (over `link`, the pass's connection,
    when given); classify its failures."""
    settings = runtime.settings
    if not settings.smtp_host or row.payload is None:
        raise RuntimeError("SMTP is not configured")
    own = link is None
    link = link or SmtpLink(settings)
    sender = parseaddr(settings.mail_from or "")[1]
    try:
        if row.payload.isascii() and row.to_address.isascii() and sender:
            # As rendered: headers already encoded, the body already in a transfer
            # encoding; sent as stored, without parsing and serialising it again.
            await link.send_raw(sender, row.to_address, row.payload)
        else:  # an address needing SMTPUTF8: the library's own handling
            await link.send(message_from_string(row.payload, policy=SMTP_POLICY))
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise PermanentFailure(f"{exc.code} {exc.message}") from None
        raise
    finally:
        if own:
            await link.close()


async def _claim(runtime: Runtime, limit: int) -> list[OutboundMessage]:
    """Take due rows for this worker: a lease that another worker, or this one after a
    crash, may take over once it runs out."""
    async with runtime.sessions.begin() as session:
        return await claim_due(session, now=runtime.clock(), lease=LEASE, limit=limit)


async def deliver_due(runtime: Runtime, *, limit: int = 50) -> Delivery:
    """Send every due email in the outbox once; returns what happened.

    The database is not held while the SMTP server is talked to; the pass's emails share
    one SMTP connection.
    """
    link = SmtpLink(runtime.settings)
    try:
        return await _deliver(runtime, await _claim(runtime, limit), link)
    finally:
        await link.close()


async def _deliver(runtime: Runtime, rows: list[OutboundMessage], link: SmtpLink) -> Delivery:
    if not rows:
        return Delivery()
    # One connection for the pass, each attempt committed on it before the next send (no
    # transaction is open while the servers are talked to): a checkout, its ping and
    # its return for every message cost more than the UPDATE itself on PostgreSQL.
    async with runtime.engine.connect() as conn:
        return await _deliver_on(runtime, rows, link, conn)


async def _deliver_on(
    runtime: Runtime, rows: list[OutboundMessage], link: SmtpLink, conn: AsyncConnection
) -> Delivery:
    sent = retried = dead = 0
    for row in rows:
        status, error, next_at, provider_id = "sent", None, None, None
        try:
            if row.channel == "sms":
                provider_id = await send_sms(runtime, row)
                status = "queued"
            else:
                await send_email(runtime, row, link)
        except OptedOut as exc:
            status, error = "dead", f"the citizen opted out at the carrier ({exc})"
            await _mark_opted_out(runtime, row)
        except PermanentFailure as exc:
            status, error = "dead", str(exc)
        except Exception as exc:  # network, timeouts, 4xx: try again later
            error = f"{type(exc).__name__}: {exc}"
            if row.attempts >= runtime.settings.outbox_max_attempts:
                status = "dead"
            else:
                status, next_at = "pending", runtime.clock() + backoff(row.attempts)
        async with conn.begin():  # committed before the next send
            await record_attempt(
                conn,
                outbound_id=row.id,
                status=status,
                last_error=error[:500] if error else None,
                provider_id=provider_id or None,
                next_attempt_at=next_at,
                sent_at=utcnow() if status in ("sent", "queued") else None,
            )
        result = {"queued": "sent", "pending": "retry"}.get(status, status)
        OUTBOX_SENDS.labels(channel=row.channel, result=result).inc()
        if error is not None:
            ERRORS.labels(part="outbox").inc()
        sent += status in ("sent", "queued")
        retried += status == "pending"
        dead += status == "dead"
        log.info("outbox %s to %s: %s", row.id, mask(row.to_address), status)
    return Delivery(sent, retried, dead)


async def _mark_opted_out(runtime: Runtime, row: OutboundMessage) -> None:
    from models.contacts import Contact, set_opt_out

    async with runtime.sessions.begin() as session:
        contact = await session.get(Contact, row.contact_id) if row.contact_id else None
        if contact is not None:
            set_opt_out(contact, opted_out=True)


async def retry_dead_letter(runtime: Runtime, row_id: int, *, actor: str) -> OutboundMessage | None:
    """Queue a dead or suppressed message again; None when there is no such row, or its
    citizen has opted out (they must send START first)."""
    from models.audit import record
    from models.contacts import Contact

    async with runtime.sessions.begin() as session:
        row = await session.get(OutboundMessage, row_id)
        if row is None or row.status not in ("dead", "suppressed"):
            return None
        contact = await session.get(Contact, row.contact_id) if row.contact_id else None
        if contact is not None and contact.opted_out:
            return None
        row.status, row.next_attempt_at, row.last_error = "pending", runtime.clock(), None
        record(session, actor=actor, action="outbox.retry", subject=str(row.id))
        await session.flush()
        return row


async def run_outbox(runtime: Runtime, stop: asyncio.Event, *, interval: float = 2.0) -> None:
    """Deliver until `stop` is set; one failure never ends the loop. At the start and
    every `gateway.resume.EVERY`, text messages a dead process stored but never handled
    are handled first, their replies queued here (`gateway.resume`)."""
    from gateway.resume import EVERY, resume_unhandled

    resume_at = 0.0
    while not stop.is_set():
        if time.monotonic() >= resume_at:
            resume_at = time.monotonic() + EVERY.total_seconds()
            try:
                await resume_unhandled(runtime)
            except Exception:
                log.exception("looking for unhandled messages failed; trying again later")
        try:
            await deliver_due(runtime)
        except Exception:
            log.exception("outbox pass failed; trying again")
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
