"""NEW [n] (جدید): the service list, paged within the SMS budget, or the form of service n."""

from __future__ import annotations

from datetime import timedelta

from handlers.base import Context, Reply, ServiceSpec
from handlers.forms import form_template, menu_page, menu_pages, question
from models.conversations import open_conversation
from parsers.grammar import ParsedCommand
from parsers.normalize import fold_digits

COMMAND = "new"


def service_number(text: str) -> int | None:
    digits = fold_digits(text).strip()
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 4 else None


async def start_form(ctx: Context, service: ServiceSpec) -> Reply:
    """Open the form of `service` and ask its first question (a fill-in form by email)."""
    await open_conversation(
        ctx.session,
        contact_id=ctx.contact.id,
        kind="document" if ctx.document else "form",
        service=service.code,
        language=ctx.language,
        expires_at=ctx.now + timedelta(minutes=ctx.texts.expiry_minutes),
    )
    if ctx.document:
        return Reply(key="template", parts=(form_template(ctx, service),), language=ctx.language)
    intro = ctx.say(
        "form_intro",
        service=service.name.get(ctx.language),
        count=len(service.fields),
        back=ctx.word("back"),
        exit=ctx.keyword("exit"),
    )
    return ctx.replies("question", intro, question(ctx, service, 0))


async def start_by_number(ctx: Context, text: str) -> Reply | None:
    """The form of the service numbered `text`; None when `text` is not a number."""
    number = service_number(text)
    if number is None:
        return None
    service = ctx.texts.service_by_number(number)
    if service is None:
        return ctx.reply("new_no_service", number=number, kw=ctx.keyword(COMMAND))
    return await start_form(ctx, service)


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    if command.args:
        started = await start_by_number(ctx, command.args[0])
        if started is not None:
            return started
    if ctx.document:
        lines = [ctx.say("menu_header", page=1, pages=1)]
        for page in menu_pages(ctx):
            lines.extend(page)
        lines.append(ctx.say("email_menu_footer", kw=ctx.keyword(COMMAND)))
        return Reply(key="menu", parts=("\n".join(lines),), language=ctx.language)
    await open_conversation(
        ctx.session,
        contact_id=ctx.contact.id,
        kind="menu",
        language=ctx.language,
        expires_at=ctx.now + timedelta(minutes=ctx.texts.expiry_minutes),
    )
    return Reply(key="menu", parts=(menu_page(ctx, 0),), language=ctx.language)
