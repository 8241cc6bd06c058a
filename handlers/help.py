"""HELP (راهنما): the commands, in the contact's language, within two UCS-2 segments."""

from __future__ import annotations

from handlers.base import Context, Reply
from parsers.grammar import ParsedCommand

COMMAND = "help"
LISTED = ("new", "status", "mycases", "lang", "stop")


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    lines = [ctx.texts.text("help_intro", ctx.language)]
    for name in LISTED:
        lines.append(ctx.texts.text(f"help_{name}", ctx.language, kw=ctx.keyword(name)))
    return Reply(key="help", parts=("\n".join(lines),), language=ctx.language)
