"""Rendering values for a reader: Persian digits and Jalali dates in Persian replies.

>>> persian_digits("Code 4821 3307")
'Code ۴۸۲۱ ۳۳۰۷'
>>> from datetime import datetime, UTC
>>> format_date(datetime(2026, 11, 28, 12, tzinfo=UTC), "fa")
'۱۴۰۵/۰۹/۰۷'
>>> format_date(datetime(2026, 11, 28, 12, tzinfo=UTC), "en")
'2026-11-28'
>>> guess_language("status 1234"), guess_language("وضعیت"), guess_language("1234")
('en', 'fa', None)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import jdatetime

_TO_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_ARABIC_SCRIPT = re.compile(
    "[\u0600-\u065f\u066a-\u06ef\u06fa-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufefe]"
)
_LATIN = re.compile(r"[A-Za-z]")
# The city's clock for dates shown to citizens (Iran Standard Time, no DST since 2022).
CITY_TZ = timezone(timedelta(hours=3, minutes=30))


def persian_digits(text: str) -> str:
    """ASCII digits shown as Persian digits."""
    return text.translate(_TO_PERSIAN)


def localize_digits(text: str, language: str) -> str:
    """Persian digits in a Persian text, unchanged otherwise."""
    return persian_digits(text) if language == "fa" else text


def format_date(moment: datetime, language: str) -> str:
    """A date in the city's time zone: Jalali for Persian, ISO for English."""
    local = moment.astimezone(CITY_TZ)
    if language == "fa":
        jalali = jdatetime.date.fromgregorian(date=local.date())
        return persian_digits(f"{jalali.year:04d}/{jalali.month:02d}/{jalali.day:02d}")
    return local.date().isoformat()


def guess_language(text: str) -> str | None:
    """'fa' for Arabic-script text, 'en' for Latin, None when there are no letters."""
    if not isinstance(text, str):
        return None
    arabic = len(_ARABIC_SCRIPT.findall(text))
    latin = len(_LATIN.findall(text))
    if arabic == latin == 0:
        return None
    return "fa" if arabic >= latin else "en"
