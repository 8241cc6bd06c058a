"""START (شروع, 12): the contact opts back in; recorded on the contact."""

from __future__ import annotations

from handlers.base import Context, Reply
from models.contacts import set_opt_out
from parsers.grammar import ParsedCommand

COMMAND = "start"


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    set_opt_out(ctx.contact, opted_out=False)
    return ctx.reply("start_ack", kw=ctx.keyword("help"))
