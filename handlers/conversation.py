"""An open conversation: every message that is not STOP, HELP or EXIT is its answer.

In the service list: a number starts that service's form, MORE and BACK turn pages.
In a form: each answer is checked against its field and the next question is asked;
BACK returns to the previous question, SKIP passes an optional one. After the last
question a summary asks for confirmation: YES files the case through the same rules as
every other channel, EDIT n changes one answer.
"""

from __future__ import annotations

from datetime import timedelta

from handlers.base import Context, Reply, ServiceSpec
from handlers.forms import is_word, menu_page, menu_pages, question, summary_footer, summary_lines
from handlers.new import start_by_number
from handlers.submission import Submitted, submit
from models.conversations import Conversation, close_conversation
from parsers import tracking
from parsers.fields import FieldError, validate_answer
from parsers.grammar import ParsedCommand
from parsers.normalize import fold_digits, tokens


async def handle(command: ParsedCommand, ctx: Context, conversation: Conversation) -> Reply:
    conversation.expires_at = ctx.now + timedelta(minutes=ctx.texts.expiry_minutes)
    if conversation.kind == "menu":
        return await _menu(command, ctx, conversation)
    service = ctx.texts.service(conversation.service or "")
    if service is None:  # the catalogue changed under an open form
        await close_conversation(ctx.session, conversation)
        return ctx.reply("exit_done", kw=ctx.keyword("new"))
    if conversation.step >= len(service.fields):
        return await _at_summary(command, ctx, conversation, service)
    return _answer(command, ctx, conversation, service)


async def _menu(command: ParsedCommand, ctx: Context, conversation: Conversation) -> Reply:
    text = command.text
    if is_word(ctx, "more", text) or is_word(ctx, "back", text):
        step = 1 if is_word(ctx, "more", text) else -1
        last = len(menu_pages(ctx)) - 1
        conversation.page = max(0, min(conversation.page + step, last))
        return Reply(key="menu", parts=(menu_page(ctx, conversation.page),), language=ctx.language)
    words = tokens(text)
    if words:
        started = await start_by_number(ctx, words[-1])
        if started is not None:
            return started
    return ctx.reply("menu_pick", count=len(ctx.texts.services), exit=ctx.keyword("exit"))


def _ask(ctx: Context, conversation: Conversation, service: ServiceSpec, *before: str) -> Reply:
    if conversation.step >= len(service.fields):
        body = summary_lines(ctx, service, conversation.answers)
        return ctx.replies("summary", *before, body, summary_footer(ctx))
    return ctx.replies("question", *before, question(ctx, service, conversation.step))


def _answer(
    command: ParsedCommand, ctx: Context, conversation: Conversation, service: ServiceSpec
) -> Reply:
    spec = service.fields[conversation.step]
    text = command.text
    if is_word(ctx, "back", text):
        conversation.step = max(0, conversation.step - 1)
        return _ask(ctx, conversation, service)
    if is_word(ctx, "skip", text):
        if spec.required:
            return _ask(ctx, conversation, service, ctx.say("field_required"))
        value: str | None = None
    else:
        try:
            validate_answer(
                spec,
                text,
                districts=ctx.texts.district_numbers(service.code),
                region=ctx.texts.default_region,
            )
        except FieldError as exc:
            if spec.type == "district":
                number = _district_elsewhere(ctx, service, text)
                if number is not None:
                    label = ctx.texts.district_label(number, ctx.language)
                    return _ask(
                        ctx, conversation, service, ctx.say("service_not_here", district=label)
                    )
            return _ask(ctx, conversation, service, ctx.say(exc.reply_key, **exc.values))
        value = text.strip()
    conversation.answers = {**conversation.answers, spec.key: value}
    if conversation.editing:
        conversation.step = len(service.fields)
        conversation.editing = False
    else:
        conversation.step += 1
    return _ask(ctx, conversation, service)


def _district_elsewhere(ctx: Context, service: ServiceSpec, text: str) -> int | None:
    """A real district the service is not offered in, if that is what was typed."""
    digits = fold_digits(text).strip()
    if digits.isascii() and digits.isdigit() and int(digits) in ctx.texts.district_numbers():
        return int(digits)
    return None


async def _at_summary(
    command: ParsedCommand, ctx: Context, conversation: Conversation, service: ServiceSpec
) -> Reply:
    words = tokens(command.text)
    count = len(service.fields)
    if words and is_word(ctx, "confirm", command.text):
        outcome = await submit(
            ctx.session,
            city=ctx.texts,
            service=service,
            answers=conversation.answers,
            contact=ctx.contact,
            channel=ctx.contact.channel,
            actor=ctx.actor,
        )
        if isinstance(outcome, Submitted):
            await close_conversation(ctx.session, conversation)
            code = tracking.format_code(outcome.case.code)
            return ctx.reply("created", code=code, pin=outcome.pin, kw=ctx.keyword("status"))
        first = outcome.problems[0]
        keys = [spec.key for spec in service.fields]
        conversation.step = keys.index(first.key) if first.key in keys else 0
        conversation.editing = True
        labels = ", ".join(
            spec.label.get(ctx.language)
            for spec in service.fields
            if spec.key in {p.key for p in outcome.problems}
        )
        return _ask(ctx, conversation, service, ctx.say("form_problems", fields=labels))
    if words and is_word(ctx, "edit", words[0]):
        number = fold_digits(words[1]) if len(words) > 1 else ""
        if number.isascii() and number.isdigit() and 1 <= int(number) <= count:
            conversation.step = int(number) - 1
            conversation.editing = True
            return _ask(ctx, conversation, service)
        return ctx.reply("edit_pick", edit=ctx.word("edit"), count=count)
    if is_word(ctx, "back", command.text):
        conversation.step = count - 1
        conversation.editing = True
        return _ask(ctx, conversation, service)
    return _ask(ctx, conversation, service)
