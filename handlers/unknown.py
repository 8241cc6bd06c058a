"""Text that names no command: a short hint, with "did you mean …?" when a keyword is close.

The suggestion is only ever a suggestion: the command the citizen did not type is
never run.
"""

from __future__ import annotations

from handlers.base import Context, Reply
from parsers.grammar import ParsedCommand

COMMAND = "unknown"


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    help_kw = ctx.keyword("help")
    if not command.text.strip():
        return ctx.reply("empty", help=help_kw)
    if command.suggestion:
        return ctx.reply("unknown_suggest", suggestion=command.suggestion, help=help_kw)
    return ctx.reply("unknown", help=help_kw)
