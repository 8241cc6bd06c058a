"""STATUS code [PIN] (وضعیت): a case's status, only for its own contact or with its PIN.

Anyone else gets exactly the reply for a code that does not exist, so a stranger cannot
learn whether a code is in use. A code whose check digits are wrong is a typing mistake
and is told so; it never reaches the database.
"""

from __future__ import annotations

from handlers.base import Context, Reply
from models.cases import check_pin, find_case, last_public_note
from parsers import tracking
from parsers.display import format_date, localize_digits
from parsers.errors import InvalidChecksum, ParseError
from parsers.grammar import ParsedCommand
from parsers.normalize import fold_digits
from parsers.segments import budget

COMMAND = "status"
MAX_SEGMENTS = 2


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
    pin = fold_digits(command.args[1]) if len(command.args) > 1 else None
    case = await find_case(ctx.session, code=code)
    visible = case is not None and (
        case.contact_id == ctx.contact.id or (pin is not None and check_pin(pin, case.pin_hash))
    )
    if case is None or not visible:
        return ctx.reply("status_unknown", code=tracking.format_code(code))
    reply = ctx.reply(
        "status_reply",
        code=tracking.format_code(code),
        service=ctx.texts.service_name(case.service, ctx.language),
        status=ctx.texts.status_name(case.status, ctx.language),
        date=format_date(case.updated_at, ctx.language),
    )
    note = last_public_note(case)
    if note:
        room = budget(MAX_SEGMENTS) - len(reply.text) - 1
        if room >= 12:
            line = localize_digits(
                ctx.texts.text("status_note", ctx.language, note=note), ctx.language
            )
            if len(line) > room:
                line = line[: room - 1].rstrip() + "…"
            reply = Reply(key=reply.key, text=f"{reply.text}\n{line}", language=reply.language)
    return reply
