"""The one explicit registry of commands, in a fixed order, and the dispatcher.

The dispatcher picks the reply language (the contact's choice, else the language the
open form was started in, else the language of the keyword typed, else the script of
the text, else the city's default). While a conversation is open, STOP, HELP and EXIT
always act and anything else is the conversation's answer; an expired conversation is
closed and the reply says so.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from handlers import conversation, exit, help, lang, mycases, new, start, status, stop, unknown
from handlers.base import Context, Handler, Reply
from models.conversations import close_conversation, find_conversation
from parsers.display import guess_language
from parsers.grammar import ParsedCommand

HANDLERS: MappingProxyType[str, Handler] = MappingProxyType(
    {
        help.COMMAND: help.handle,
        status.COMMAND: status.handle,
        new.COMMAND: new.handle,
        mycases.COMMAND: mycases.handle,
        exit.COMMAND: exit.handle,
        stop.COMMAND: stop.handle,
        start.COMMAND: start.handle,
        lang.COMMAND: lang.handle,
    }
)
ALWAYS_ACT = frozenset({help.COMMAND, stop.COMMAND, exit.COMMAND})


def case_asked_about(command: ParsedCommand) -> str | None:
    """The tracking code a command will look up, if any: the pipeline reads a whole
    group's cases in one statement before handling it. (Only STATUS looks one up.)"""
    return status.requested_code(command)


def reply_language(command: ParsedCommand, ctx: Context, default: str) -> str:
    if ctx.contact.language:
        return ctx.contact.language
    return command.language or guess_language(command.text) or default


async def dispatch(command: ParsedCommand, ctx: Context) -> Reply:
    """Route a message to its conversation or its command; return the reply."""
    if ctx.document:
        handler = HANDLERS.get(command.command or "", unknown.handle)
        return await handler(command, ctx)
    open_form, expired = await find_conversation(
        ctx.session, contact_id=ctx.contact.id, now=ctx.now
    )
    if open_form is not None and not ctx.contact.language:
        ctx = replace(ctx, language=open_form.language)
    if open_form is not None and command.command not in ALWAYS_ACT:
        return await conversation.handle(command, ctx, open_form)
    handler = HANDLERS.get(command.command or "", unknown.handle)
    reply = await handler(command, ctx)
    if open_form is not None and command.command == stop.COMMAND:
        await close_conversation(ctx.session, open_form)
    elif open_form is not None and command.command == help.COMMAND:
        service = ctx.texts.service(open_form.service or "")
        name = service.name.get(ctx.language) if service else ""
        reminder = ctx.say("form_reminder", service=name, exit=ctx.keyword("exit"))
        reply = ctx.replies(reply.key, *reply.parts, reminder)
    if expired:
        notice = ctx.say("form_expired", minutes=ctx.texts.expiry_minutes)
        reply = ctx.replies(reply.key, notice, *reply.parts)
    return reply


def with_language(ctx: Context, language: str) -> Context:
    return replace(ctx, language=language)
