"""Abuse limits a sender lives within, kept on the sender's contact row.

- **Messages**: a token bucket of `messages` per `window` seconds (a burst of
  `messages`, then one more every `window / messages` seconds). A message past it is
  stored but not handled; the first one refused is answered with how long to wait, the
  rest of a flood with silence (each reply costs the city, and an answer to every text
  of a loop would keep the loop going). STOP (`UNLIMITED`) always goes through, on
  every channel, and is not counted.
- **Failed lookups**: `lookup_failures` STATUS lookups that found nothing visible (no
  such code, or a code without its PIN from another number: the citizen cannot tell
  which, on purpose) per `lookup_window` seconds. Past that, STATUS by code is refused
  without looking, so tracking codes and PINs cannot be enumerated one text at a time;
  a citizen's own cases (MYCASES) stay reachable.

The contact row is locked for the whole handling of a message (the pipeline reads it
`FOR UPDATE`), so processes on several hosts count one sender's messages together. The
functions here compute; the callers store the new values (`models.inbox.keep_limits`,
written with the rest of a group's changes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

from models.contacts import Contact
from models.inbox import keep_limits

if TYPE_CHECKING:
    from handlers.base import Context, Reply


# Commands no limit holds back: a citizen can always opt out.
UNLIMITED = frozenset({"stop"})
# The outcome recorded on a message the limit refused (kept, not acted on).
REFUSED = "refused: rate limit"


@dataclass(frozen=True)
class Limits:
    """The limits of one channel; 0 turns a limit off."""

    messages: int = 20
    window: float = 600.0
    lookup_failures: int = 5
    lookup_window: float = 3600.0


class Admission(Enum):
    ADMIT = "admit"
    REFUSE_AND_SAY = "refuse, and say how long to wait"
    REFUSE_SILENTLY = "refuse silently"


@dataclass(frozen=True)
class Bucket:
    """A sender's message bucket as stored on its contact row."""

    allowance: float | None = None  # tokens left at `allowance_at`; None: full
    allowance_at: datetime | None = None
    limited_at: datetime | None = None  # the refusal last announced, while still refused

    @classmethod
    def of(cls, contact: Contact) -> Bucket:
        return cls(contact.allowance, contact.allowance_at, contact.limited_at)


def admit(bucket: Bucket, now: datetime, limits: Limits) -> tuple[Admission, Bucket]:
    """Take one message from `bucket`: what to do with it, and the bucket after it."""
    if limits.messages <= 0:
        return Admission.ADMIT, bucket
    tokens = _tokens(bucket, now, limits)
    if tokens >= 1.0:
        return Admission.ADMIT, Bucket(tokens - 1.0, now, None)
    if bucket.limited_at is None:
        return Admission.REFUSE_AND_SAY, Bucket(tokens, now, now)
    return Admission.REFUSE_SILENTLY, Bucket(tokens, now, bucket.limited_at)


async def take_message(ctx: Context, command: str | None) -> tuple[Admission, Reply | None]:
    """Count one message of `ctx.contact` (asking for `command`) against its channel's
    limit and keep the bucket (`models.inbox.keep_limits`): whether to act on the
    message, and the reply to a first refusal (None otherwise). An `UNLIMITED` command
    is admitted without being counted."""
    if command in UNLIMITED:
        return Admission.ADMIT, None
    admission, bucket = admit(Bucket.of(ctx.contact), ctx.now, ctx.limits)
    await keep_limits(
        ctx.session,
        ctx.contact,
        allowance=bucket.allowance,
        allowance_at=bucket.allowance_at,
        limited_at=bucket.limited_at,
    )
    if admission is not Admission.REFUSE_AND_SAY:
        return admission, None
    minutes = minutes_until_admitted(bucket, ctx.now, ctx.limits)
    return admission, ctx.reply("rate_limited", minutes=minutes)


def minutes_until_admitted(bucket: Bucket, now: datetime, limits: Limits) -> int:
    """Whole minutes (at least 1) until the bucket admits a message again."""
    if limits.messages <= 0:
        return 1
    missing = max(0.0, 1.0 - _tokens(bucket, now, limits))
    return max(1, math.ceil(missing * limits.window / limits.messages / 60))


def _tokens(bucket: Bucket, now: datetime, limits: Limits) -> float:
    if bucket.allowance is None or bucket.allowance_at is None:
        return float(limits.messages)
    elapsed = max(0.0, (now - bucket.allowance_at).total_seconds())
    refilled = bucket.allowance + elapsed * limits.messages / limits.window
    return min(float(limits.messages), refilled)


def lookups_blocked_for(contact: Contact, now: datetime, limits: Limits) -> int | None:
    """Minutes (at least 1) until `contact` may look a code up again; None when it may now."""
    if limits.lookup_failures <= 0 or contact.failed_lookups_at is None:
        return None
    ends = contact.failed_lookups_at + timedelta(seconds=limits.lookup_window)
    if now >= ends or (contact.failed_lookups or 0) < limits.lookup_failures:
        return None
    return max(1, math.ceil((ends - now).total_seconds() / 60))


def after_failed_lookup(contact: Contact, now: datetime, limits: Limits) -> tuple[int, datetime]:
    """The contact's failed lookups and their window's start after one more failure
    (a window starts at its first failure)."""
    started, count = contact.failed_lookups_at, contact.failed_lookups or 0
    if started is None or now >= started + timedelta(seconds=limits.lookup_window):
        return 1, now
    return count + 1, started
