"""Every reply fits its SMS budget: two UCS-2 segments (134 characters) for Persian.

HELP is built from the live keyword table, STATUS from the longest service and status
names, so a translator who lengthens a text or a service name sees this test fail.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from gateway.settings import CityConfig
from handlers import help as help_handler
from handlers.base import Context
from models.contacts import Contact
from parsers.display import format_date, localize_digits
from parsers.grammar import KeywordTable, parse
from parsers.segments import segments

UCS2_TWO_SEGMENTS = 134
SAMPLE = {
    "kw": "پرونده‌های من",
    "help": "راهنما",
    "code": "4821 3307 6634",
    "suggestion": "UNSUBSCRIBE",
    "note": "",
    "due": "1405/10/30",
    "more": "بیشتر",
    "exit": "انصراف",
    "back": "برگشت",
    "skip": "SKIP",
    "yes": "CONFIRM",
    "edit": "CHANGE",
    "count": 12,
    "page": 4,
    "pages": 4,
    "number": 999,
    "step": 6,
    "total": 6,
    "label": "کد ملی خریدار",
    "fields": "کد ملی فروشنده، تاریخ انتقال",
    "district": "منطقه ۲۲",
    "minutes": 1440,
    "min": 1,
    "max": 100000,
    "pin": "0000",
}


def _context(config: CityConfig, language: str) -> Context:
    table = KeywordTable.build(config.keyword_triples())
    contact = Contact(channel="sms", address="+989121234567", language=language)
    return Context(session=None, texts=config, contact=contact, language=language, keywords=table)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", ["fa", "en"])
async def test_help_lists_every_command_within_two_ucs2_segments(city_config, language):
    ctx = _context(city_config, language)
    reply = await help_handler.handle(parse("help", ctx.keywords), ctx)
    assert len(reply.text) <= UCS2_TWO_SEGMENTS
    assert segments(reply.text) <= 2
    for command in help_handler.LISTED:
        assert ctx.keyword(command) in reply.text


@pytest.mark.parametrize("language", ["fa", "en"])
def test_every_text_fits_two_segments(city_config: CityConfig, language: str):
    longest_service = max((s.name.get(language) for s in city_config.services), key=len)
    longest_status = max((s.get(language) for s in city_config.statuses.values()), key=len)
    values = {
        **SAMPLE,
        "service": longest_service,
        "status": longest_status,
        "date": format_date(datetime(2026, 11, 28, tzinfo=UTC), language),
    }
    for key, text in city_config.texts.items():
        if key.startswith(("help_", "email_")):  # email texts have no SMS budget
            continue
        placeholders = set(re.findall(r"\{(\w+)\}", text.get(language)))
        rendered = localize_digits(
            city_config.text(key, language, **{k: values[k] for k in placeholders}), language
        )
        assert segments(rendered) <= 2, f"{key}/{language}: {len(rendered)} chars"
        assert len(rendered) <= UCS2_TWO_SEGMENTS or language == "en", key


def test_persian_texts_use_persian_letters(city_config: CityConfig):
    for key, text in city_config.texts.items():
        assert not re.search("[يك]", text.fa), f"Arabic yeh or kaf in texts.{key}"
    for service in city_config.services:
        for value in (service.name.fa, service.description.fa):
            assert not re.search("[يك]", value), service.code
