"""LANG fa|en (زبان): the language of every later reply to this contact."""

from __future__ import annotations

from dataclasses import replace

from handlers.base import Context, Reply
from models.contacts import set_language
from parsers.grammar import ParsedCommand
from parsers.normalize import normalize

COMMAND = "lang"
CHOICES = {
    "fa": "fa",
    "farsi": "fa",
    "persian": "fa",
    "فارسی": "fa",
    "پارسی": "fa",
    "فا": "fa",
    "en": "en",
    "eng": "en",
    "english": "en",
    "انگلیسی": "en",
}


async def handle(command: ParsedCommand, ctx: Context) -> Reply:
    choice = CHOICES.get(normalize(command.args[0])) if command.args else None
    if choice is None:
        return ctx.reply("lang_usage", kw=ctx.keyword(COMMAND))
    set_language(ctx.contact, language=choice)
    return replace(ctx, language=choice).reply("lang_set")
