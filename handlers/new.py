"""NEW [n] (جدید): the service list, paged within the SMS budget, or the form of service n."""

from __future__ import annotations

from datetime import timedelta

from handlers.base import Context, Reply, ServiceSpec
from handlers.forms import menu_page, question
from models.conversations import open_conversation
from parsers.grammar import ParsedCommand
from parsers.normalize import fold_digits

COMMAND = "new"


def service_number(text: str) -> int | None:
    digits = fold_digits(text).strip()
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 4 else None


async def start_form(ctx: Context, service: ServiceSpec) -> Reply:
    """Open the form of `service` and ask its first question."""
    await open_conversation(
        ctx.session,
        contact_id=ctx.contact.id,
        kind="form",
        service=service.code,
        language=ctx.language,
        expires_at=ctx.now + timedelta(minutes=ctx.texts.expiry_minutes),
    )
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
    await open_conversation(
        ctx.session,
        contact_id=ctx.contact.id,
        kind="menu",
        language=ctx.language,
        expires_at=ctx.now + timedelta(minutes=ctx.texts.expiry_minutes),
    )
    return Reply(key="menu", parts=(menu_page(ctx, 0),), language=ctx.language)
