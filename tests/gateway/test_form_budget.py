"""Every conversation reply fits two segments: the whole catalogue, both languages.

Walks every service of config.yaml through the signed webhook with the longest valid
answers and with a wrong answer for every field, and pages through the service list.
"""

from __future__ import annotations

import pytest

from parsers.segments import segments
from tests.support import Twilio, make_settings


@pytest.fixture
def settings(database_url):
    """One number sends the whole sweep, faster than any citizen: no abuse limits."""
    return make_settings(database_url, sms_limit_messages=0, lookup_limit_failures=0)


LONGEST = {
    "national_id": "0012345679",
    "postal_code": "1435678911",
    "district": "22",
    "number": "99999",
    "mobile": "09121234567",
    "date": "1403/12/30",
    "choice": "1",
    "yes_no": "خیر",
}
WRONG = {
    "national_id": "0012345678",
    "postal_code": "12",
    "district": "99",
    "number": "-5",
    "mobile": "123",
    "date": "1404/12/30",
    "choice": "99",
    "yes_no": "maybe",
    "text": "x" * 2500,
}
KEYWORDS = {"fa": ("جدید", "بیشتر", "بله"), "en": ("NEW", "MORE", "YES")}


def _long_answer(spec) -> str:
    if spec.type == "text":
        return "ب" * (spec.max_length or 500)
    if spec.type == "number":
        return str(int(spec.max))
    if spec.type == "choice":
        return str(
            max(range(1, len(spec.options) + 1), key=lambda i: len(spec.options[i - 1].label.fa))
        )
    return LONGEST[spec.type]


def _check(messages: list[str], where: str) -> None:
    assert messages, where
    for message in messages:
        assert segments(message) <= 2, f"{where}: {len(message)} chars: {message!r}"


@pytest.mark.parametrize("language", ["fa", "en"])
async def test_catalogue_walk_stays_within_budget(twilio: Twilio, city_config, language):
    new, more, yes = KEYWORDS[language]
    sender = "+989121110000" if language == "fa" else "+989121110001"
    pages = [await twilio.messages(new, sender=sender)]
    for _ in range(len(city_config.services)):
        pages.append(await twilio.messages(more, sender=sender))
    for page in pages:
        _check(page, "service list")
    listed = "\n".join(m for page in pages for m in page)
    for service in city_config.services:
        assert service.name.get(language) in listed
    for service in city_config.services:
        where = f"{service.code}/{language}"
        _check(await twilio.messages(f"{new} {service.number}", sender=sender), where)
        for spec in service.fields:
            _check(
                await twilio.messages(WRONG[spec.type], sender=sender), f"{where} wrong {spec.key}"
            )
            _check(await twilio.messages(_long_answer(spec), sender=sender), f"{where} {spec.key}")
        created = await twilio.messages(yes, sender=sender)
        _check(created, f"{where} created")
        assert "رمز" in created[0] or "PIN" in created[0], created
