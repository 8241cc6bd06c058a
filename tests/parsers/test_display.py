"""What a reader sees: Persian digits and Jalali dates in Persian, ISO dates in English.

Dates are the city's (Asia/Tehran, +03:30): a case updated late in the evening UTC is
already the next day for the citizen, and around Nowruz the next year.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.display import (
    CITY_TZ,
    format_date,
    guess_language,
    localize_digits,
    persian_digits,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0123456789", "۰۱۲۳۴۵۶۷۸۹"),
        ("Code 4821 3307 6634", "Code ۴۸۲۱ ۳۳۰۷ ۶۶۳۴"),
        ("کد ۱۲ و 34", "کد ۱۲ و ۳۴"),
        ("no digits", "no digits"),
        ("", ""),
    ],
)
def test_persian_digits(text: str, expected: str) -> None:
    assert persian_digits(text) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [("fa", "کد ۴۸۲۱"), ("en", "کد 4821")],
)
def test_localize_digits_only_in_persian(language: str, expected: str) -> None:
    assert localize_digits("کد 4821", language) == expected


@pytest.mark.parametrize(
    ("moment", "jalali", "iso"),
    [
        (utc(2025, 3, 21, 12), "۱۴۰۴/۰۱/۰۱", "2025-03-21"),  # Nowruz 1404
        (utc(2024, 3, 20, 12), "۱۴۰۳/۰۱/۰۱", "2024-03-20"),  # Nowruz 1403
        (utc(2025, 3, 20, 12), "۱۴۰۳/۱۲/۳۰", "2025-03-20"),  # 1403 is a leap year
        (utc(2024, 3, 19, 12), "۱۴۰۲/۱۲/۲۹", "2024-03-19"),  # 1402 is not
        (utc(2023, 3, 21, 12), "۱۴۰۲/۰۱/۰۱", "2023-03-21"),
        (utc(2024, 9, 21, 12), "۱۴۰۳/۰۶/۳۱", "2024-09-21"),  # the first six months have 31 days
        (utc(2024, 9, 22, 12), "۱۴۰۳/۰۷/۰۱", "2024-09-22"),
        (utc(2026, 11, 28, 12), "۱۴۰۵/۰۹/۰۷", "2026-11-28"),
    ],
)
def test_format_date_jalali_for_persian_iso_for_english(
    moment: datetime, jalali: str, iso: str
) -> None:
    assert format_date(moment, "fa") == jalali
    assert format_date(moment, "en") == iso


@pytest.mark.parametrize(
    ("moment", "jalali", "iso"),
    [
        # 23:00 UTC on the last day of 1403 is 02:30 on Nowruz in Tehran.
        (utc(2025, 3, 20, 23), "۱۴۰۴/۰۱/۰۱", "2025-03-21"),
        (utc(2025, 3, 20, 20, 29), "۱۴۰۳/۱۲/۳۰", "2025-03-20"),  # 23:59 in Tehran
        (utc(2025, 3, 20, 20, 30), "۱۴۰۴/۰۱/۰۱", "2025-03-21"),  # midnight in Tehran
        (utc(2025, 6, 30, 21), "۱۴۰۴/۰۴/۱۰", "2025-07-01"),  # no summer time since 2022
        (utc(2025, 6, 30, 20, 29), "۱۴۰۴/۰۴/۰۹", "2025-06-30"),
        (
            datetime(2025, 3, 20, 18, tzinfo=timezone(timedelta(hours=-5))),
            "۱۴۰۴/۰۱/۰۱",
            "2025-03-21",
        ),
    ],
)
def test_format_date_uses_tehran_time(moment: datetime, jalali: str, iso: str) -> None:
    assert format_date(moment, "fa") == jalali
    assert format_date(moment, "en") == iso


@given(st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2035, 1, 1)))
def test_city_clock_matches_asia_tehran(naive: datetime) -> None:
    moment = naive.replace(tzinfo=UTC)
    assert (
        moment.astimezone(CITY_TZ).utcoffset()
        == moment.astimezone(ZoneInfo("Asia/Tehran")).utcoffset()
    )
    assert (
        format_date(moment, "en") == moment.astimezone(ZoneInfo("Asia/Tehran")).date().isoformat()
    )


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)))
def test_persian_date_is_persian_digits_only(naive: datetime) -> None:
    shown = format_date(naive.replace(tzinfo=UTC), "fa")
    assert len(shown) == 10
    assert shown[4] == shown[7] == "/"
    assert set(shown) <= set("۰۱۲۳۴۵۶۷۸۹/")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status 1234", "en"),
        ("HELP", "en"),
        ("وضعیت", "fa"),
        ("وضعيت ۱۲۳۴", "fa"),
        ("كمك", "fa"),
        ("وضعیت 4821 3307 6634", "fa"),
        ("لطفا STATUS", "en"),  # more Latin letters than Persian ones
        ("درخواست من status", "fa"),
        ("1234", None),
        ("4821 3307 6634", None),
        ("", None),
        ("   ", None),
        ("😀👍", None),
        ("!?", None),
        (None, None),
    ],
)
def test_guess_language(text: str, expected: str | None) -> None:
    assert guess_language(text) == expected  # type: ignore[arg-type]
