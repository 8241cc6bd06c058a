"""Dates typed by citizens: Jalali or Gregorian, any digits, any separators.

A year from 1200 to 1499 is Jalali (the solar hijri calendar Iran uses), from 1800 on it
is Gregorian. Year-month-day is the usual order; day-month-year is read when the year
comes last. Month names in Persian (فروردین … اسفند) and English are understood. Leap
years follow `jdatetime` (1403 is a Jalali leap year, 1404 is not).

>>> validate("۱۴۰۳/۱۲/۳۰")
datetime.date(2025, 3, 20)
>>> validate("1404-12-30")
Traceback (most recent call last):
    ...
parsers.errors.OutOfRange: no such day
>>> validate("20 مرداد 1403"), validate("2024-08-10")
(datetime.date(2024, 8, 10), datetime.date(2024, 8, 10))
>>> format_day(validate("2025-03-21"), "fa")
'۱۴۰۴/۰۱/۰۱'
"""

from __future__ import annotations

import re
from datetime import date

import jdatetime

from parsers.display import persian_digits
from parsers.errors import InvalidFormat, OutOfRange
from parsers.normalize import normalize

JALALI_MONTHS = (
    "فروردین",
    "اردیبهشت",
    "خرداد",
    "تیر",
    "مرداد",
    "شهریور",
    "مهر",
    "آبان",
    "آذر",
    "دی",
    "بهمن",
    "اسفند",
)
GREGORIAN_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_NUMERIC = re.compile(r"^(\d{1,4})[/\-. ](\d{1,2})[/\-. ](\d{1,4})$", re.ASCII)
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$", re.ASCII)
_NAMED = re.compile(r"^(\d{1,2})[\s\-/.]*([^\d\s\-/.]+)[\s\-/.]*(\d{4})$", re.ASCII)


def _month_number(word: str) -> tuple[int, str] | None:
    normal = normalize(word).replace("آ", "ا")
    for index, name in enumerate(JALALI_MONTHS, start=1):
        if normal == normalize(name).replace("آ", "ا"):
            return index, "jalali"
    for index, name in enumerate(GREGORIAN_MONTHS, start=1):
        if len(normal) >= 3 and name.startswith(normal.rstrip(".")):
            return index, "gregorian"
    return None


def _build(year: int, month: int, day: int, calendar: str | None = None) -> date:
    if calendar is None:
        if 1200 <= year <= 1499:
            calendar = "jalali"
        elif 1800 <= year <= 2200:
            calendar = "gregorian"
        else:
            raise InvalidFormat("year not understood")
    try:
        if calendar == "jalali":
            return jdatetime.date(year, month, day).togregorian()  # type: ignore[no-any-return]
        return date(year, month, day)
    except ValueError:
        raise OutOfRange("no such day") from None


def validate(text: str) -> date:
    """The Gregorian date meant, or `InvalidFormat` / `OutOfRange` (no such day)."""
    cleaned = normalize(text or "").replace("،", " ").replace(",", " ")
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    match = _COMPACT.match(cleaned)
    if match:
        return _build(int(match[1]), int(match[2]), int(match[3]))
    match = _NUMERIC.match(cleaned)
    if match:
        first, month, last = (int(g) for g in match.groups())
        if len(match[1]) == 4:
            return _build(first, month, last)
        if len(match[3]) == 4:
            return _build(last, month, first)
        raise InvalidFormat("four-digit year needed")
    match = _NAMED.match(cleaned)
    if match:
        found = _month_number(match[2])
        if found is None:
            raise InvalidFormat("month not understood")
        return _build(int(match[3]), found[0], int(match[1]), found[1])
    raise InvalidFormat("not a date")


def is_valid(text: str) -> bool:
    try:
        validate(text)
    except (InvalidFormat, OutOfRange):
        return False
    return True


def format_day(day: date, language: str) -> str:
    """Jalali with Persian digits for Persian, ISO 8601 otherwise."""
    if language == "fa":
        jalali = jdatetime.date.fromgregorian(date=day)
        return persian_digits(f"{jalali.year:04d}/{jalali.month:02d}/{jalali.day:02d}")
    return day.isoformat()
