"""The channel-neutral path of one inbound message: store, dedupe, parse, handle, record.

Every edge (Twilio webhook, simulator, email poller) hands an `InboundText` to
`process`. Messages arriving together share one transaction (`gateway.group_commit`):
stored, handled, their replies recorded, one commit; no answer leaves before its message
is durable. What a group's handlers will look up (the senders' contacts and open
conversations, the cases asked about) is read for the whole group first, and their
replies and "handled" marks are written for the whole group at its end: a few statements
a group instead of several a message. A group that fails is undone and each message runs
alone: stored and committed first, then handled, a handler's failure recorded on the row
and answered politely. A second delivery of the same provider id gets the reply already
given and changes nothing. Messages of one contact are handled one at a time (the
contact row is locked), so two texts sent together can neither skip a form step nor file
a case twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.group_commit import GroupCommit
from gateway.metrics import ERRORS, INBOUND, REPLIES
from gateway.runtime import Runtime
from handlers.base import Context, Reply
from handlers.limits import REFUSED, Admission, take_message
from handlers.registry import case_asked_about, dispatch, reply_language, with_language
from models.base import per_transaction, utcnow
from models.cases import read_cases
from models.contacts import get_or_create_contact
from models.conversations import read_senders
from models.inbox import (
    NewInbound,
    claim_inbound,
    defer_writes,
    find_replies,
    mark_failed,
    record_reply,
    store_inbound,
    store_inbound_group,
    write_deferred,
)
from models.messages import LATE_REPLY, InboundMessage
from parsers.addresses import mask
from parsers.grammar import ParsedCommand, parse

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


# The reply messages a handle gave: at once, or (when their rows are written with the
# group's, `models.inbox.defer_writes`) a function giving them once they are written.
Sent = tuple[ReplyMessage, ...] | Callable[[], tuple[ReplyMessage, ...]]
Handle = Callable[
    [AsyncSession, Runtime, InboundMessage, "InboundText"],
    Awaitable[tuple[Reply | None, Sent, str | None]],
]
# What a channel's handler reads ahead for a group, once, given its messages' senders.
ReadAhead = Callable[[AsyncSession, Runtime, list[str]], Awaitable[None]]


@dataclass(frozen=True)
class _Job:
    msg: InboundText
    handle: Handle
    read_ahead: ReadAhead | None = None


@dataclass(frozen=True)
class _Done:
    outcome: Outcome
    is_new: bool
    command: str | None


async def process(
    runtime: Runtime,
    msg: InboundText,
    handle: Handle | None = None,
    read_ahead: ReadAhead | None = None,
) -> Outcome:
    """Handle one inbound message exactly once and return the reply to give.

    `handle` runs inside the transaction that holds the message's row; the default
    parses the text as a command and answers inline (SMS, the simulator). `read_ahead`,
    if given, reads what `handle` will look up, once for the group's messages that name
    it (given their senders). The message
    joins this process's group commit (`gateway.group_commit`): it is stored, handled
    and committed with the others that arrived at the same time, and the outcome is
    returned only once that commit is done.
    """
    msg = InboundText(
        channel=msg.channel,
        provider_id=_storable(msg.provider_id),
        from_address=_storable(msg.from_address),
        body=_storable(msg.body),
        to_address=_storable(msg.to_address),
        raw=_storable(msg.raw),
    )
    group = runtime.inbound_group
    if group is None:
        group = GroupCommit(
            lambda jobs: _run_group(runtime, jobs),
            lambda job: _run_alone(runtime, job),
            max_size=runtime.settings.group_commit_max,
            gather_s=runtime.settings.group_commit_gather_ms / 1000,
        )
        runtime.inbound_group = group
    done: _Done = await group.submit(_Job(msg, handle or _handle, read_ahead))
    return done.outcome


async def _run_group(runtime: Runtime, jobs: Sequence[_Job]) -> list[_Done]:
    """Every job in one transaction, one commit. The rows go in ordered by provider id,
    then the jobs run in the order of their sender (stable, so one sender's messages keep
    their order): two processes' groups take the unique-index entries and the contact
    locks in the same order, so they wait for each other instead of deadlocking (should
    PostgreSQL still see a deadlock, the group that loses runs its messages alone)."""
    by_id = sorted(range(len(jobs)), key=lambda i: (jobs[i].msg.channel, jobs[i].msg.provider_id))
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].msg.channel, jobs[i].msg.from_address))
    results: list[Callable[[], _Done] | None] = [None] * len(jobs)
    async with runtime.sessions.begin() as session:
        defer_writes(session)
        rows = await store_inbound_group(session, [_new(jobs[i].msg) for i in by_id])
        stored = dict(zip(by_id, rows, strict=True))
        await _read_ahead(session, runtime, [jobs[i] for i in order])
        for i in order:
            row, is_new = stored[i]
            results[i] = await _in_transaction(session, runtime, jobs[i], row, is_new, not is_new)
        await write_deferred(session)
    done = [r() for r in results if r is not None]
    for item, job in zip(done, jobs, strict=True):
        _account(job.msg, item)
    return done


# session.info: a text -> its ParsedCommand (one keyword table for the transaction)
_PARSED = per_transaction("citygate.parsed")


async def _read_ahead(session: AsyncSession, runtime: Runtime, jobs: Sequence[_Job]) -> None:
    """What the group's messages will look up, read in one statement each instead of one
    each per message: every sender's contact (locked) with its open conversation, and the
    cases the texts' STATUS commands ask about with their history
    (`models.conversations.read_senders`, `models.cases.read_cases`), and what each
    channel's own `read_ahead` reads for its messages' senders."""
    senders: defaultdict[str, list[str]] = defaultdict(list)
    for job in jobs:
        if job.msg.from_address:
            senders[job.msg.channel].append(job.msg.from_address)
    for channel, addresses in senders.items():
        await read_senders(session, channel=channel, addresses=addresses)
    ahead: dict[ReadAhead, list[str]] = {}
    for job in jobs:  # the channels' own reads (the email reply caps, say)
        if job.read_ahead is not None and job.msg.from_address:
            ahead.setdefault(job.read_ahead, []).append(job.msg.from_address)
    for read, addresses in ahead.items():
        await read(session, runtime, addresses)
    texts = [job.msg for job in jobs if job.handle is _handle]
    if not texts:
        return
    table = await runtime.keyword_table(session)
    parsed: dict[str, ParsedCommand] = session.info.setdefault(_PARSED, {})
    codes = []
    for msg in texts:
        command = parsed.get(msg.body) or parse(msg.body, table)
        parsed[msg.body] = command
        code = case_asked_about(command)
        if code is not None:
            codes.append(code)
    await read_cases(session, codes=codes)


async def _in_transaction(
    session: AsyncSession,
    runtime: Runtime,
    job: _Job,
    row: InboundMessage,
    is_new: bool,
    claim: bool,
) -> Callable[[], _Done]:
    """Handle one stored message inside `session`'s transaction; returns a function that
    gives the outcome once the transaction's kept writes are written. With `claim` the
    row is locked and read fresh first, and a message already handled gets its earlier
    answer."""
    msg = job.msg
    if claim:
        await write_deferred(session)  # the earlier delivery may be in this group
        row = await claim_inbound(session, inbound_id=row.id, delivery=not is_new)
        if row.handled_at is not None:
            replayed = _Done(await _replay(session, row), is_new, None)
            return lambda: replayed
    reply, sent, command = await job.handle(session, runtime, row, msg)
    key = reply.key if reply is not None else None
    inbound_id = row.id

    def outcome() -> _Done:
        messages = sent() if callable(sent) else sent
        return _Done(Outcome(inbound_id, messages, key, duplicate=False), is_new, command)

    return outcome


async def _run_alone(runtime: Runtime, job: _Job) -> _Done:
    """One message the careful way: stored and committed first, then handled in its own
    transaction; a handler's failure is recorded on the row and answered politely."""
    done = await _alone(runtime, job)
    _account(job.msg, done)
    return done


async def _alone(runtime: Runtime, job: _Job) -> _Done:
    msg = job.msg
    async with runtime.sessions.begin() as session:
        row, is_new = await store_inbound(session, _new(msg))
        inbound_id = row.id
    try:
        async with runtime.sessions.begin() as session:
            finish = await _in_transaction(session, runtime, job, row, is_new, True)
        return finish()
    except Exception:
        ERRORS.labels(part="handler").inc()
        log.exception("handling %s message %s failed", msg.channel, inbound_id)
        text = runtime.config.text("internal_error", runtime.config.default_language)
        async with runtime.sessions.begin() as session:
            row, marked = await mark_failed(
                session,
                inbound_id=inbound_id,
                error=f"handler failed; see the log for message {inbound_id}",
                reply_text=text,
                now=utcnow(),
            )
            if not marked:  # another delivery handled it meanwhile: its answer
                return _Done(await _replay(session, row), is_new, None)
        outcome = Outcome(inbound_id, (ReplyMessage(text, None),), "internal_error", False)
        return _Done(outcome, is_new, None)


async def handle_text(
    session: AsyncSession, runtime: Runtime, row: InboundMessage, msg: InboundText
) -> tuple[ReplyMessage, ...]:
    """Handle a stored, claimed text message as the webhook does, in `session`'s
    transaction; its reply messages (`gateway.resume`: a message that a process which
    died had stored but not handled)."""
    _reply, sent, _command = await _handle(session, runtime, row, msg)
    return sent() if callable(sent) else sent


def _new(msg: InboundText) -> NewInbound:
    return NewInbound(
        channel=msg.channel,
        provider_id=msg.provider_id,
        from_address=msg.from_address,
        to_address=msg.to_address,
        body=msg.body,
        raw=msg.raw,
    )


async def _replay(session: AsyncSession, row: InboundMessage) -> Outcome:
    """The answer already given to a message delivered again."""
    log.info("repeat delivery of %s message %s answered again", row.channel, row.id)
    earlier = await find_replies(session, inbound_id=row.id)
    if any(o.kind == LATE_REPLY for o in earlier):  # answered by the outbox: not again
        return Outcome(row.id, (), None, duplicate=True)
    messages = tuple(ReplyMessage(o.body, o.id) for o in earlier)
    if not messages and row.reply_text:
        messages = (ReplyMessage(row.reply_text, None),)
    return Outcome(row.id, messages, None, duplicate=True)


@lru_cache(maxsize=64)
def _inbound_counter(channel: str, duplicate: bool) -> Counter:
    """The counter child of a channel and kind (`labels` costs ten times an `inc`)."""
    return INBOUND.labels(channel=channel, duplicate=str(duplicate).lower())


@lru_cache(maxsize=512)  # channels × reply keys: a few dozen
def _replies_counter(channel: str, key: str) -> Counter:
    return REPLIES.labels(channel=channel, key=key)


def _account(msg: InboundText, done: _Done) -> None:
    """Metrics and the log line of a message whose outcome is committed."""
    _inbound_counter(msg.channel, not done.is_new).inc()
    if done.outcome.duplicate:
        return
    key = done.outcome.reply_key
    _replies_counter(msg.channel, key or "none").inc()
    if key == "internal_error":
        return
    log.info(
        "%s from %s: %s -> %s",
        msg.channel,
        mask(msg.from_address),
        done.command or "unknown",
        key or "no reply",
    )


async def _handle(
    session: AsyncSession, runtime: Runtime, row: InboundMessage, msg: InboundText
) -> tuple[Reply | None, Sent, str | None]:
    """Parse and dispatch inside the caller's transaction; record the reply on the row."""
    contact = await get_or_create_contact(
        session, channel=msg.channel, address=msg.from_address, lock=True
    )
    table = await runtime.keyword_table(session)
    command = session.info.get(_PARSED, {}).get(msg.body) or parse(msg.body, table)
    limits = runtime.settings.limits(msg.channel)
    ctx = Context(
        session=session,
        texts=runtime.config,
        contact=contact,
        language=runtime.config.default_language,
        keywords=table,
        now=runtime.clock(),
        limits=limits,
    )
    ctx = with_language(ctx, reply_language(command, ctx, runtime.config.default_language))
    admission, reply = await take_message(ctx, command.command)
    if admission is Admission.ADMIT:
        reply = await dispatch(command, ctx)
    parts = reply.parts if reply is not None else ()
    ids = await record_reply(
        session,
        row,
        contact_id=contact.id,
        command=command.command,
        parts=parts,
        now=ctx.now,
        outcome="handled" if admission is Admission.ADMIT else REFUSED,
    )

    def sent() -> tuple[ReplyMessage, ...]:
        return tuple(ReplyMessage(part, id_) for part, id_ in zip(parts, ids, strict=True))

    return reply, sent, command.command
