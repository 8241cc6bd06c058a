"""The email edge: one raw message in, at most one reply queued in the outbox.

Per message, in this order: store the raw bytes (content-addressed) and the inbound row
(deduped on Message-ID plus a content hash); stay silent for automatic mail, recording
bounces; decide whether the sender is trusted; find the case thread; then either a
form (complete: a case; incomplete: what is missing, kept for the next reply), a
message for a case's history, or a command with the SMS grammar. Replies are rendered
as mail and queued; the per-address cap keeps a loop from ever growing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.blobs import store_blob
from gateway.email_attachments import link_attachments, store_attachments
from gateway.email_render import strip_reply_prefix, tagged_code, verified_tokens
from gateway.email_replies import queue_reply, read_caps, under_cap
from gateway.pipeline import InboundText, Outcome, ReplyMessage, Sent, process
from gateway.runtime import Runtime
from handlers.base import Context, Reply
from handlers.limits import REFUSED, Admission, take_message
from handlers.registry import dispatch
from handlers.submission import Rejected, submit
from models.cases import Case, CaseEvent, find_case
from models.contacts import Contact, get_or_create_contact, record_bounce
from models.conversations import close_conversation, find_conversation, open_conversation
from models.messages import InboundMessage, cases_of_message_ids
from parsers import tracking
from parsers.automail import automatic_reason, bounced_recipient, is_bounce
from parsers.email_forms import parse_form
from parsers.grammar import ParsedCommand, parse
from parsers.mime import ParsedEmail, parse_email
from parsers.quotes import new_part

log = logging.getLogger("citygate.email")
DOCUMENT_FORM_DAYS = 14


@dataclass(frozen=True)
class MailIn:
    raw: bytes
    parsed: ParsedEmail
    raw_sha256: str
    content_hash: str


def content_hash(parsed: ParsedEmail) -> str:
    basis = "\x1f".join([parsed.from_address or "", parsed.date or "", parsed.subject, parsed.text])
    return hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()


async def handle_email(
    runtime: Runtime, raw: bytes, *, fallback_id: str, stored: str | None = None
) -> Outcome:
    """Store and handle one message exactly once; a repeat returns the first outcome.

    `stored`: the digest of `raw` already stored (`store_blob`), as the poller stores a
    chunk's mails at once in a worker thread (the event loop does not stop for the
    disk); otherwise it is stored here first. Either way the message joins its group
    commit without yielding first, so mails handed in together are one group, in order."""
    digest = stored or store_blob(runtime.settings.data_dir, "mail", raw)
    parsed = parse_email(raw)
    mail = MailIn(raw, parsed, digest, content_hash(parsed))
    provider_id = f"{parsed.message_id or fallback_id}|{mail.content_hash[:16]}"[:255]
    headers = {k: v[:500] for k, v in parsed.headers[:60]}
    message = InboundText(
        channel="email",
        provider_id=provider_id,
        from_address=parsed.from_address or "",
        body=parsed.text,
        to_address=None,
        raw={"headers": headers, "raw_sha256": digest},
    )

    async def handle(
        session: AsyncSession, rt: Runtime, row: InboundMessage, msg: InboundText
    ) -> tuple[Reply | None, Sent, str | None]:
        # What the handling changes on the mail's row goes in one UPDATE at the end
        # instead of one at each query that follows a change (the handling flushes
        # explicitly wherever a later query must see its writes: attachments, cases,
        # conversations, the reply row).
        with session.no_autoflush:
            result = await _handle(session, rt, row, mail)
        await session.flush()
        return result

    return await process(runtime, message, handle, read_caps)


async def _handle(
    session: AsyncSession, runtime: Runtime, row: InboundMessage, mail: MailIn
) -> tuple[Reply | None, Sent, str | None]:
    settings = runtime.settings
    parsed = mail.parsed
    row.message_id = parsed.message_id
    row.content_hash = mail.content_hash
    row.raw_sha256 = mail.raw_sha256
    row.handled_at = runtime.clock()
    headers = {k: v for k, v in reversed(parsed.headers)}
    if is_bounce(headers, parsed.from_address, parsed.content_type):
        await _record_bounce(session, mail)
        row.outcome = "ignored: bounce"
        return None, (), None
    reason = automatic_reason(headers, parsed.from_address, parsed.content_type, settings.mail_from)
    if reason is None and not parsed.from_address:
        reason = "no sender address"
    if reason is not None:
        row.outcome = f"ignored: {reason}"[:200]
        return None, (), None
    address = parsed.from_address or ""
    contact = await get_or_create_contact(session, channel="email", address=address, lock=True)
    row.contact_id = contact.id
    ctx = Context(
        session=session,
        texts=runtime.config,
        contact=contact,
        language=contact.language or _language_of(parsed) or runtime.config.default_language,
        keywords=await runtime.keyword_table(session),
        now=runtime.clock(),
        document=True,
        trusted=_trusted(parsed, settings.mail_trusted_authserv_id),
        limits=settings.limits("email"),
    )
    asked = _asked(parsed, ctx)
    admission, reply = await take_message(ctx, asked.command.command)
    case: Case | None = None
    command = None
    if admission is Admission.ADMIT:
        case = await _thread_case(session, runtime, parsed, contact, ctx.trusted)
        reply, command, case = await _decide(session, runtime, row, mail, ctx, case, asked)
        row.outcome = "handled"
    else:  # kept (the raw mail is stored) but not acted on: no case, no attachment
        row.outcome = REFUSED
    row.reply_text = reply.text if reply else None
    if reply is None:
        return None, (), command
    if not await under_cap(session, runtime, address):
        row.outcome = f"{row.outcome}; reply suppressed by the per-address cap"
        return reply, (), command
    ids = await queue_reply(session, runtime, row, mail.parsed, ctx.contact, reply, case)
    # The reply's row is written with the group's (`models.inbox.queue_mail_reply`): its
    # id is known once the group's writes are.
    return reply, lambda: (ReplyMessage(reply.text, ids[0]),), command


def _language_of(parsed: ParsedEmail) -> str | None:
    from parsers.display import guess_language

    return guess_language(parsed.subject + "\n" + new_part(parsed.text)[:500])


def _trusted(parsed: ParsedEmail, authserv_id: str | None) -> bool:
    """With a named server, only its top-most Authentication-Results decides."""
    if not authserv_id:
        return True
    results = parsed.header_all("authentication-results")
    if not results:
        return False
    top = results[0]
    server = top.split(";", 1)[0].strip().lower()
    if server != authserv_id.lower():
        return False
    verdicts = top.lower()
    return "dmarc=pass" in verdicts or ("spf=pass" in verdicts and "dkim=pass" in verdicts)


async def _record_bounce(session: AsyncSession, mail: MailIn) -> None:
    recipient = bounced_recipient(mail.raw.decode("utf-8", "replace"))
    if recipient is not None:
        await record_bounce(session, channel="email", address=recipient)


async def _thread_case(
    session: AsyncSession,
    runtime: Runtime,
    parsed: ParsedEmail,
    contact: Contact,
    trusted: bool,
) -> Case | None:
    """The case this mail continues: our signed ids, stored ids, body marker, subject tag."""
    secret = runtime.secret
    ids = list(parsed.in_reply_to) + list(reversed(parsed.references))
    tokens = verified_tokens(secret, " ".join(ids)) + verified_tokens(secret, parsed.text)
    candidates = await cases_of_message_ids(session, message_ids=ids, tokens=tokens)
    for case_id in candidates:
        case = await session.get(Case, case_id)
        if case is not None and case.contact_id == contact.id and trusted:
            return case
    code = tagged_code(parsed.subject)
    if code and trusted:
        return await find_case(session, code=code, contact_id=contact.id)
    return None


async def _decide(
    session: AsyncSession,
    runtime: Runtime,
    row: InboundMessage,
    mail: MailIn,
    ctx: Context,
    case: Case | None,
    asked: _Asked,
) -> tuple[Reply | None, str | None, Case | None]:
    """The reply, the command, and the case the mail is about (the one it filed, if any:
    kept at hand for the reply's subject tag)."""
    settings = runtime.settings
    if len(mail.raw) > settings.mail_message_max_bytes:
        megabytes = settings.mail_message_max_bytes // (1024 * 1024)
        return ctx.reply("email_too_large", max=megabytes), None, case
    notes = await store_attachments(session, runtime, row, mail, ctx)
    text, command = asked.text, asked.command
    attached = bool(mail.parsed.attachments)
    formed = await _form(session, runtime, row, ctx, text, asked.subject, attached)
    if formed is not None:
        form_reply, filed = formed
        return _with_notes(ctx, form_reply, notes), "new", filed or case
    if case is not None and command.command is None and text.strip():
        session.add(
            CaseEvent(
                case_id=case.id,
                kind="message",
                note=text[:4000],
                public=True,
                actor=f"citizen ({ctx.contact.channel})",
            )
        )
        row.case_id = case.id
        if mail.parsed.attachments:
            await link_attachments(session, row, case.id)
        reply = ctx.reply("email_added_to_case", code=tracking.format_code(case.code))
        return _with_notes(ctx, reply, notes), "message", case
    reply = await dispatch(command, ctx)
    return _with_notes(ctx, reply, notes), command.command, case


@dataclass(frozen=True)
class _Asked:
    """What a mail asks: its new text (above any quote), its subject without Re:/Fwd:,
    and the command in them."""

    text: str
    subject: str
    command: ParsedCommand


def _asked(parsed: ParsedEmail, ctx: Context) -> _Asked:
    text = new_part(parsed.text)
    subject = strip_reply_prefix(parsed.subject)
    return _Asked(text, subject, _command(subject, text, ctx))


def _command(subject: str, text: str, ctx: Context) -> ParsedCommand:
    """The command in the subject if it has one, else in the first line of the body."""
    by_subject = parse(subject, ctx.keywords) if subject else None
    if by_subject is not None and by_subject.command is not None:
        return by_subject
    first = next((line for line in text.splitlines() if line.strip()), "")
    by_body = parse(first, ctx.keywords)
    if by_body.command is None and by_subject is not None and by_subject.suggestion:
        return by_subject
    return by_body


def _with_notes(ctx: Context, reply: Reply, notes: list[str]) -> Reply:
    if not notes:
        return reply
    return Reply(
        key=reply.key, parts=(reply.text + "\n\n" + "\n".join(notes),), language=reply.language
    )


async def _form(
    session: AsyncSession,
    runtime: Runtime,
    row: InboundMessage,
    ctx: Context,
    text: str,
    subject: str,
    attached: bool,
) -> tuple[Reply, Case | None] | None:
    """A form in the mail (named by its Service line, or the form this contact has open):
    the reply, and the case filed."""
    config = runtime.config
    open_form, _expired = await find_conversation(session, contact_id=ctx.contact.id, now=ctx.now)
    named = parse_form(text, []).service
    service = None
    if named:
        from parsers.normalize import fold_digits

        digits = fold_digits(named).strip()
        service = (
            config.service_by_number(int(digits))
            if digits.isascii() and digits.isdigit() and len(digits) < 4
            else config.service(named.strip().lower())
        )
    if service is None and open_form is not None and open_form.kind == "document":
        service = config.service(open_form.service or "")
    if service is None:
        return None
    form = parse_form(text, service.fields)
    if not form.answers and named is None:
        return None
    answers: dict[str, str | None] = {}
    if open_form is not None and open_form.service == service.code:
        answers.update(open_form.answers)
    answers.update({k: v for k, v in form.answers.items() if v})
    outcome = await submit(
        session,
        city=config,
        service=service,
        answers=answers,
        contact=ctx.contact,
        channel="email",
        actor=ctx.actor,
    )
    if isinstance(outcome, Rejected):
        conversation = open_form
        if conversation is None or conversation.service != service.code:
            conversation = await open_conversation(
                session,
                contact_id=ctx.contact.id,
                kind="document",
                service=service.code,
                language=ctx.language,
                expires_at=ctx.now + timedelta(days=DOCUMENT_FORM_DAYS),
            )
        conversation.answers = {k: v for k, v in answers.items() if v}
        conversation.expires_at = ctx.now + timedelta(days=DOCUMENT_FORM_DAYS)
        labels = {spec.key: spec.label.get(ctx.language) for spec in service.fields}
        lines = [ctx.say("email_problems")]
        for problem in outcome.problems:
            reason = ctx.say(problem.reply_key, **problem.values)
            lines.append(
                ctx.say(
                    "email_problem_line", label=labels.get(problem.key, problem.key), reason=reason
                )
            )
        missing = {p.key for p in outcome.problems}
        lines += ["", ctx.say("email_fix_below"), ""]
        lines.append(f"{ctx.say('email_service_label')}: {service.number}")
        lines += [f"{labels[k]}:" for k in labels if k in missing]
        problems = Reply(key="email_problems", parts=("\n".join(lines),), language=ctx.language)
        return problems, None
    if open_form is not None:
        await close_conversation(session, open_form)
    row.case_id = outcome.case.id
    if attached:  # the mail's stored attachments go with the case
        await link_attachments(session, row, outcome.case.id)
    code = tracking.format_code(outcome.case.code)
    created = ctx.reply("created", code=code, pin=outcome.pin, kw=ctx.keyword("status"))
    return created, outcome.case
