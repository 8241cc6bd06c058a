"""STOP (لغو, 11): the contact opts out of messages the city starts; recorded on the contact."""

from __future__ import annotations

from handlers.base import Context, Reply
from models.contacts import set_opt_out
from parsers.grammar import ParsedCommand

COMMAND = "stop"


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    set_opt_out(ctx.contact, opted_out=True)
    return ctx.reply("stop_ack", kw=ctx.keyword("start"))
