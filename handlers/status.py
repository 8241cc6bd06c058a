"""STATUS code [PIN] (وضعیت): a case's status, only for its own contact or with its PIN.

Anyone else gets exactly the reply for a code that does not exist, so a stranger cannot
learn whether a code is in use. A code whose check digits are wrong is a typing mistake
and is told so; it never reaches the database. The reply names the service, the status,
the date of the last change (Jalali in Persian), the expected completion date while the
case is open, and the latest public note as far as the SMS budget allows.

Lookups that find nothing are counted per sender (`handlers.limits`); past the limit,
STATUS by code is refused without looking until the window ends, so codes and PINs
cannot be guessed one text at a time. The sender's own cases stay a MYCASES away.
"""

from __future__ import annotations

from datetime import timedelta

from handlers.base import MAX_SEGMENTS, Context, Reply
from handlers.limits import after_failed_lookup, lookups_blocked_for
from models.cases import FINAL_STATUSES, Case, find_case, last_public_note, verify_pin
from models.inbox import keep_limits
from parsers import tracking
from parsers.display import format_date
from parsers.errors import InvalidChecksum, ParseError
from parsers.grammar import ParsedCommand
from parsers.normalize import fold_digits
from parsers.segments import budget

COMMAND = "status"


def describe(case: Case, ctx: Context) -> str:
    """The status text of a case the contact may see, within two segments."""
    lines = [
        ctx.say(
            "status_reply",
            code=tracking.format_code(case.code),
            service=ctx.texts.service_name(case.service, ctx.language),
            status=ctx.texts.status_name(case.status, ctx.language),
            date=format_date(case.updated_at, ctx.language),
        )
    ]
    service = ctx.texts.service(case.service)
    if service is not None and case.status not in FINAL_STATUSES:
        due = case.created_at + timedelta(days=service.sla_days)
        lines[-1] += ("، " if ctx.language == "fa" else ", ") + ctx.say(
            "status_due", due=format_date(due, ctx.language)
        )
    text = "\n".join(lines)
    note = last_public_note(case)
    room = budget(MAX_SEGMENTS) - len(text) - 1
    if note and room >= 12:
        line = ctx.say("status_note", note=note)
        if len(line) > room:
            line = line[: room - 1].rstrip() + "…"
        text = f"{text}\n{line}"
    return text


def requested_code(command: ParsedCommand) -> str | None:
    """The well-formed tracking code a STATUS command asks about, else None (the
    pipeline reads a whole group's cases in one statement before handling it)."""
    if command.command != COMMAND or not command.args:
        return None
    try:
        return tracking.validate(command.args[0])
    except ParseError:
        return None


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    kw = ctx.keyword(COMMAND)
    if not command.args:
        return ctx.reply("status_usage", kw=kw)
    typed = command.args[0]
    try:
        code = tracking.validate(typed)
    except InvalidChecksum:
        return ctx.reply("status_typo", code=tracking.format_code(typed))
    except ParseError:
        return ctx.reply("status_bad_code", kw=kw)
    blocked = lookups_blocked_for(ctx.contact, ctx.now, ctx.limits)
    if blocked is not None:
        return ctx.reply("status_locked", minutes=blocked)
    pin = fold_digits(command.args[1]) if len(command.args) > 1 else None
    case = await find_case(ctx.session, code=code)
    visible = case is not None and (
        (case.contact_id == ctx.contact.id and ctx.trusted)
        or (pin is not None and await verify_pin(pin, case.pin_hash))
    )
    if case is None or not visible:
        failed, since = after_failed_lookup(ctx.contact, ctx.now, ctx.limits)
        await keep_limits(ctx.session, ctx.contact, failed_lookups=failed, failed_lookups_at=since)
        return ctx.reply("status_unknown", code=tracking.format_code(code))
    return Reply(key="status_reply", parts=(describe(case, ctx),), language=ctx.language)
