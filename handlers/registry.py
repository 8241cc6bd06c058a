"""The one explicit registry of commands, in a fixed order, and the dispatcher.

The dispatcher picks the reply language (the contact's choice, else the language of the
keyword typed, else the script of the text, else the city's default), runs the handler
and never lets an exception's text reach a citizen.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from handlers import help, lang, start, status, stop, unknown
from handlers.base import Context, Handler, Reply
from parsers.display import guess_language
from parsers.grammar import ParsedCommand

HANDLERS: MappingProxyType[str, Handler] = MappingProxyType(
    {
        help.COMMAND: help.handle,
        status.COMMAND: status.handle,
        stop.COMMAND: stop.handle,
        start.COMMAND: start.handle,
        lang.COMMAND: lang.handle,
    }
)


def reply_language(command: ParsedCommand, ctx: Context, default: str) -> str:
    if ctx.contact.language:
        return ctx.contact.language
    return command.language or guess_language(command.text) or default


async def dispatch(command: ParsedCommand, ctx: Context) -> Reply:
    """Run the command's handler (or the unknown-text one) and return its reply."""
    handler = HANDLERS.get(command.command or "", unknown.handle)
    return await handler(command, ctx)


def with_language(ctx: Context, language: str) -> Context:
    return replace(ctx, language=language)
