"""HELP (راهنما): the commands, in the contact's language, within two UCS-2 segments."""

from __future__ import annotations

from handlers.base import Context, Reply
from parsers.grammar import ParsedCommand

COMMAND = "help"
LISTED = ("status", "lang", "stop", "start")


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    lines = [ctx.texts.text("help_intro", ctx.language)]
    for name in LISTED:
        lines.append(ctx.texts.text(f"help_{name}", ctx.language, kw=ctx.keyword(name)))
    text = "\n".join(lines)
    return Reply(key="help", text=text, language=ctx.language)
