"""EXIT (انصراف): leave the open form or service list. Never CANCEL: carriers act on it."""

from __future__ import annotations

from handlers.base import Context, Reply
from models.conversations import close_conversation, find_conversation
from parsers.grammar import ParsedCommand

COMMAND = "exit"


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    conversation, _expired = await find_conversation(
        ctx.session, contact_id=ctx.contact.id, now=ctx.now
    )
    if conversation is None:
        return ctx.reply("exit_nothing", help=ctx.keyword("help"))
    await close_conversation(ctx.session, conversation)
    return ctx.reply("exit_done", kw=ctx.keyword("new"))
