"""MY CASES (پرونده‌های من): the contact's open cases, code, service and status, in budget."""

from __future__ import annotations

from handlers.base import MAX_SEGMENTS, Context, Reply
from models.cases import open_cases_of
from parsers.display import localize_digits
from parsers.grammar import ParsedCommand
from parsers.segments import segments

COMMAND = "mycases"


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    cases = await open_cases_of(ctx.session, contact_id=ctx.contact.id)
    if not cases:
        return ctx.reply("mycases_none", kw=ctx.keyword("new"))
    lines = [ctx.say("mycases_header")]
    for index, case in enumerate(cases):
        line = localize_digits(
            f"{case.code} {ctx.texts.service_name(case.service, ctx.language)}: "
            f"{ctx.texts.status_name(case.status, ctx.language)}",
            ctx.language,
        )
        rest = len(cases) - index - 1
        tail = [ctx.say("mycases_more", count=rest)] if rest else []
        if segments("\n".join([*lines, line, *tail])) > MAX_SEGMENTS:
            lines.append(ctx.say("mycases_more", count=len(cases) - index))
            break
        lines.append(line)
    return Reply(key="mycases", parts=("\n".join(lines),), language=ctx.language)
