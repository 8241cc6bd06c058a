"""Validators: national ID, postal code, mobile, dates, and the typed form fields built on them.

Each table lists what a citizen might type and what the validator must make of it. Every
typed value runs as written, in Persian digits (۰–۹) and in Arabic-Indic digits (٠–٩), often
with the dashes, spaces, ZWNJ and bidi marks a phone keyboard adds. Expected national IDs
are checked against the mod-11 rule computed here, not by the module under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.city import FIELD_TYPES as CITY_FIELD_TYPES
from gateway.settings import CityConfig
from parsers import dates, mobile, national_id, postal_code
from parsers.errors import (
    InvalidChecksum,
    InvalidFormat,
    InvalidLength,
    OutOfRange,
    ParseError,
    Suspicious,
)
from parsers.fields import FieldError, FieldProblem, check_form, validate_answer

PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
RLM, LRM, ZWNJ = "\u200f", "\u200e", "\u200c"


def digit_sets(typed: str) -> list[tuple[str, str]]:
    """`typed` as written, in Persian digits and in Arabic-Indic digits (each once)."""
    variants = {
        typed: "as-typed",
        typed.translate(PERSIAN): "persian",
        typed.translate(ARABIC_INDIC): "arabic-indic",
    }
    return [(text, name) for text, name in variants.items()]


def in_digit_sets(*rows: Any) -> list[Any]:
    """Parametrize rows ``typed`` or ``(typed, *expected)`` once per digit set of `typed`."""
    params = []
    for row in rows:
        typed, *expected = row if isinstance(row, tuple) else (row,)
        for text, name in digit_sets(typed):
            params.append(pytest.param(text, *expected, id=f"{typed}|{name}"))
    return params


def mod11_check(first_nine: str) -> int:
    """The national-ID check digit: weights 10..2, r = sum % 11, r if r < 2 else 11 - r."""
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1)))
    remainder = total % 11
    return remainder if remainder < 2 else 11 - remainder


# National ID ---------------------------------------------------------------------------

VALID_IDS = [
    "0012345679",
    "0499370899",
    "0074582038",
    "0310245079",
    "0123456789",
    "1234567891",  # r == 1: the check digit is the remainder itself
    "4485719030",  # r == 0
    "2741836515",
    "3712654804",
    "1298347602",
    "3987214562",
]
WRONG_CHECK_IDS = [
    "0012345678",
    "1234567890",
    "0499370898",
    "0499370989",  # two digits swapped
    "4485719031",
    "2741836551",
]


def test_tables_agree_with_mod11_rule() -> None:
    for code in VALID_IDS:
        assert mod11_check(code[:9]) == int(code[9]), code
        assert len(set(code)) > 1, code
    for code in WRONG_CHECK_IDS:
        assert mod11_check(code[:9]) != int(code[9]), code


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
@settings(max_examples=300, deadline=None)
def test_national_id_follows_mod11_for_any_nine_digits(first_nine: str) -> None:
    check = mod11_check(first_nine)
    assert national_id.check_digit(first_nine) == check
    code = f"{first_nine}{check}"
    if len(set(code)) == 1:
        with pytest.raises(Suspicious):
            national_id.validate(code)
    else:
        assert national_id.validate(code.translate(PERSIAN)) == code
    wrong = f"{first_nine}{(check + 1) % 10}"
    with pytest.raises(InvalidChecksum):
        national_id.validate(wrong)


@pytest.mark.parametrize(
    ("typed", "expected"),
    in_digit_sets(
        *((code, code) for code in VALID_IDS),
        ("001-234567-9", "0012345679"),
        ("001 234567 9", "0012345679"),
        ("001.234567.9", "0012345679"),
        ("001_234567_9", "0012345679"),
        ("  0499370899  ", "0499370899"),
        (f"{RLM}0012345679{LRM}", "0012345679"),
        (f"001{ZWNJ}234567{ZWNJ}9", "0012345679"),
        ("0012345679\n", "0012345679"),
        # Leading zeros lost in a spreadsheet: 8 and 9 digits are padded to ten.
        ("12345679", "0012345679"),
        ("74582038", "0074582038"),
        ("61819298", "0061819298"),
        ("499370899", "0499370899"),
        ("310245079", "0310245079"),
        ("123456789", "0123456789"),
        ("512278954", "0512278954"),
    ),
)
def test_valid_national_id(typed: str, expected: str) -> None:
    assert national_id.validate(typed) == expected
    assert national_id.is_valid(typed)


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        *in_digit_sets(*((code, InvalidChecksum) for code in WRONG_CHECK_IDS)),
        *in_digit_sets(
            ("12345678", InvalidChecksum),  # padded to 0012345678
            ("499370898", InvalidChecksum),  # padded to 0499370898
            ("001-234567-8", InvalidChecksum),
            ("1", InvalidLength),
            ("123456", InvalidLength),
            ("1234567", InvalidLength),  # seven digits are never padded
            ("00123456789", InvalidLength),
            ("001234567900", InvalidLength),
            ("00123456a9", InvalidFormat),
            ("ID0012345679", InvalidFormat),
            ("+0012345679", InvalidFormat),
            ("0012345679#", InvalidFormat),
            ("0012345679 کد ملی", InvalidFormat),
        ),
        ("abc", InvalidFormat),
        ("کد ملی", InvalidFormat),
        ("", InvalidFormat),
        ("   ", InvalidFormat),
        ("-", InvalidFormat),
        # One repeated digit passes the checksum but belongs to nobody.
        *in_digit_sets(*((str(d) * 10, Suspicious) for d in range(10))),
        *in_digit_sets(("111-111111-1", Suspicious), ("00000000", Suspicious)),
    ],
)
def test_invalid_national_id(typed: str, error: type[ParseError]) -> None:
    with pytest.raises(error) as caught:
        national_id.validate(typed)
    assert type(caught.value) is error
    assert not national_id.is_valid(typed)


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("0012345679", "001-234567-9"),
        ("12345679", "001-234567-9"),
        ("۰۴۹۹۳۷۰۸۹۹", "049-937089-9"),
        ("٠٠١ ٢٣٤٥٦٧ ٩", "001-234567-9"),
        (f"{RLM}۱۲۳۴۵۶۷۸۹۱{LRM}", "123-456789-1"),
    ],
)
def test_format_national_id(typed: str, shown: str) -> None:
    assert national_id.format_id(typed) == shown


@pytest.mark.parametrize(
    ("validate", "typed", "expected"),
    [
        (national_id.validate, "001–234567–9", "0012345679"),  # en dash
        (national_id.validate, "۰۰۱‐۲۳۴۵۶۷‐۹", "0012345679"),  # U+2010 hyphen
        (postal_code.validate, "14356–78911", "1435678911"),
        (postal_code.validate, "۱۴۳۵۶−۷۸۹۱۱", "1435678911"),  # minus sign
    ],
)
def test_dash_variants_separate_digits_as_in_tracking_codes(
    validate: Any, typed: str, expected: str
) -> None:
    assert validate(typed) == expected


# Postal code ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    in_digit_sets(
        ("1435678911", "1435678911"),
        ("14356-78911", "1435678911"),
        ("14356 78911", "1435678911"),
        ("1983963113", "1983963113"),
        ("71348-45796", "7134845796"),
        ("5166614671", "5166614671"),
        (" 14356-78911 ", "1435678911"),
        (f"{RLM}14356-78911{LRM}", "1435678911"),
        (f"14356{ZWNJ}78911", "1435678911"),
    ),
)
def test_valid_postal_code(typed: str, expected: str) -> None:
    assert postal_code.validate(typed) == expected
    assert postal_code.is_valid(typed)


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        *in_digit_sets(
            ("0123456789", InvalidFormat),  # never starts with 0
            ("01435-67891", InvalidFormat),
            ("0000000000", InvalidFormat),
            ("1435a78911", InvalidFormat),
            ("14356/78911", InvalidFormat),
            ("1", InvalidLength),
            ("143567891", InvalidLength),
            ("14356789112", InvalidLength),
            ("14356-7891", InvalidLength),
            ("1111111111", Suspicious),
            ("9999999999", Suspicious),
            ("55555-55555", Suspicious),
        ),
        ("کد پستی", InvalidFormat),
        ("", InvalidFormat),
    ],
)
def test_invalid_postal_code(typed: str, error: type[ParseError]) -> None:
    with pytest.raises(error) as caught:
        postal_code.validate(typed)
    assert type(caught.value) is error
    assert not postal_code.is_valid(typed)


@pytest.mark.parametrize(
    "typed", [t for t, _ in digit_sets("1435678911")] + ["14356 78911", "۱۴۳۵۶-۷۸۹۱۱"]
)
def test_format_postal_code(typed: str) -> None:
    assert postal_code.format_code(typed) == "14356-78911"


# Mobile --------------------------------------------------------------------------------

TEHRAN_MOBILE = "+989121234567"


@pytest.mark.parametrize(
    "typed",
    in_digit_sets(
        "09121234567",
        "9121234567",
        "+989121234567",
        "00989121234567",
        "989121234567",
        "0912 123 4567",
        "0912-123-4567",
        "0912 123 45 67",
        "(0912) 123 4567",
        "+98 912 123 4567",
        "+98 (912) 123-4567",
        "0098 912 123 4567",
        " 09121234567 ",
        f"{LRM}+98 912 123 4567{RLM}",
        f"0912{ZWNJ}123{ZWNJ}4567",
    ),
)
def test_iranian_mobile_to_e164(typed: str) -> None:
    assert mobile.validate(typed) == TEHRAN_MOBILE
    assert mobile.is_valid(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    in_digit_sets(
        ("09351234567", "+989351234567"),  # Irancell
        ("09211234567", "+989211234567"),  # Rightel
        ("09901234567", "+989901234567"),
    ),
)
def test_other_iranian_operators(typed: str, expected: str) -> None:
    assert mobile.validate(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        *in_digit_sets(
            "02188776655",  # Tehran landline
            "021 8877 6655",
            "+982188776655",
            "00982188776655",
            "0912123456",  # a digit short
            "091212345678",  # a digit too many
            "+989121234567x",
            "0912 123 456a",
        ),
        "abc",
        "شماره من",
        "",
    ],
)
def test_not_an_iranian_mobile(typed: str) -> None:
    with pytest.raises(InvalidFormat):
        mobile.validate(typed)
    assert not mobile.is_valid(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        # North American numbers are FIXED_LINE_OR_MOBILE in phonenumbers: accepted.
        ("+14155550100", "+14155550100"),
        ("+1 415 555 0100", "+14155550100"),
        ("001 415 555 0100", "+14155550100"),
        ("+۱ ۴۱۵ ۵۵۵ ۰۱۰۰", "+14155550100"),
        ("+447911123456", "+447911123456"),  # UK mobile
        ("+33612345678", "+33612345678"),  # French mobile
        ("+442079460000", None),  # London landline
        ("+33123456789", None),  # Paris landline
    ],
)
def test_foreign_numbers_accepted_when_mobile_or_maybe_mobile(
    typed: str, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(InvalidFormat):
            mobile.validate(typed)
    else:
        assert mobile.validate(typed) == expected


def test_nanp_number_type_is_why_it_passes() -> None:
    number = phonenumbers.parse("+14155550100")
    assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE


def test_region_decides_numbers_without_country_code() -> None:
    assert mobile.validate("4155550100", "US") == "+14155550100"
    assert not mobile.is_valid("09121234567", "US")
    assert mobile.validate("+989121234567", "US") == TEHRAN_MOBILE


@pytest.mark.parametrize(
    ("e164", "shown"),
    [
        ("+989121234567", "0912 123 4567"),
        ("+989351234567", "0935 123 4567"),
        ("+14155550100", "+1 415-555-0100"),
        ("+447911123456", "+44 7911 123456"),
    ],
)
def test_format_number(e164: str, shown: str) -> None:
    assert mobile.format_number(e164) == shown


# Dates ---------------------------------------------------------------------------------

MORDAD_20_1403 = date(2024, 8, 10)


@pytest.mark.parametrize(
    "typed",
    in_digit_sets(
        "1403/05/20",
        "1403-05-20",
        "1403.05.20",
        "1403 05 20",
        "1403/5/20",
        "1403-05/20",
        "14030520",
        "20/05/1403",  # year last: day-month-year
        "20-5-1403",
        "20.05.1403",
        "20 05 1403",
        " 1403/05/20 ",
        f"{RLM}1403/05/20{LRM}",
        "2024/08/10",
        "2024-08-10",
        "2024.08.10",
        "2024 08 10",
        "2024-8-10",
        "20240810",
        "10/08/2024",
        "10-08-2024",
        "10.8.2024",
        "10 08 2024",
    ),
)
def test_numeric_dates_in_both_calendars(typed: str) -> None:
    assert dates.validate(typed) == MORDAD_20_1403
    assert dates.is_valid(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    in_digit_sets(
        ("20 مرداد 1403", MORDAD_20_1403),
        ("20مرداد1403", MORDAD_20_1403),
        ("20 مرداد، 1403", MORDAD_20_1403),
        (f"{RLM}20 مرداد 1403{LRM}", MORDAD_20_1403),
        ("1 فروردین 1404", date(2025, 3, 21)),
        ("5 آبان 1403", date(2024, 10, 26)),
        ("5 ابان 1403", date(2024, 10, 26)),
        ("5 أبان 1403", date(2024, 10, 26)),
        ("15 اردیبهشت 1402", date(2023, 5, 5)),
        ("1 خرداد 1403", date(2024, 5, 21)),
        ("31 شهریور 1403", date(2024, 9, 21)),
        ("10 دی 1403", date(2024, 12, 30)),
        ("10 دي 1403", date(2024, 12, 30)),  # Arabic yeh
        ("10 Aug 2024", MORDAD_20_1403),
        ("10 August 2024", MORDAD_20_1403),
        ("10 aug. 2024", MORDAD_20_1403),
        ("10 AUGUST, 2024", MORDAD_20_1403),
        ("1 Sept 2024", date(2024, 9, 1)),
    ),
)
def test_dates_with_month_names(typed: str, expected: date) -> None:
    assert dates.validate(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    in_digit_sets(
        ("1403/12/30", date(2025, 3, 20)),  # 1403 is a Jalali leap year
        ("30 اسفند 1403", date(2025, 3, 20)),
        ("1399/12/30", date(2021, 3, 20)),  # so is 1399
        ("2024-02-29", date(2024, 2, 29)),
        ("29 Feb 2024", date(2024, 2, 29)),
        ("2000-02-29", date(2000, 2, 29)),
    ),
)
def test_leap_days(typed: str, expected: date) -> None:
    assert dates.validate(typed) == expected


@pytest.mark.parametrize(
    "typed",
    in_digit_sets(
        "1404/12/30",  # 1404 is not a leap year
        "14041230",
        "30 اسفند 1404",
        "1400/12/30",
        "2025-02-29",
        "29 Feb 2025",
        "1900-02-29",
        "31 مهر 1403",  # the second half of the Jalali year has 30-day months
        "1403/13/01",
        "1403/00/10",
        "0 مرداد 1403",
        "2024-04-31",
        "32/01/2024",
    ),
)
def test_no_such_day(typed: str) -> None:
    with pytest.raises(OutOfRange):
        dates.validate(typed)
    assert not dates.is_valid(typed)


@pytest.mark.parametrize(
    "typed",
    [
        *in_digit_sets(
            "1403",
            "1403/05",
            "1403/05/20/1",
            "1403//05/20",
            "10 Foo 2024",
            "10 مردادی 1403",
            "1403 مرداد 20",
            "1700/01/01",  # neither a Jalali nor a Gregorian year we read
            "3000/01/01",
            # Two-digit years are refused, not guessed.
            "03/05/20",
            "20/05/03",
            "99/05/20",
            "030520",
            "20 مرداد 03",
            "10 Aug 24",
        ),
        "hello",
        "فردا",
        "",
        "   ",
    ],
)
def test_not_a_date(typed: str) -> None:
    with pytest.raises(InvalidFormat):
        dates.validate(typed)
    assert not dates.is_valid(typed)


@pytest.mark.parametrize("typed", ["10 junk 2024", "1 marmalade 2024", "1 decimal 2024"])
def test_words_merely_starting_like_a_month_are_not_months(typed: str) -> None:
    with pytest.raises(InvalidFormat):
        dates.validate(typed)


def test_named_dates_take_only_persian_arabic_and_ascii_digits() -> None:
    with pytest.raises(InvalidFormat):
        dates.validate("१० Aug २०२४")


@pytest.mark.parametrize("typed", ["10-Aug-2024", "10/Aug/2024", "۲۰-مرداد-۱۴۰۳"])
def test_named_dates_with_separators(typed: str) -> None:
    assert dates.validate(typed) == MORDAD_20_1403


@pytest.mark.parametrize(
    ("day", "language", "shown"),
    [
        (MORDAD_20_1403, "fa", "۱۴۰۳/۰۵/۲۰"),
        (MORDAD_20_1403, "en", "2024-08-10"),
        (date(2025, 3, 20), "fa", "۱۴۰۳/۱۲/۳۰"),
        (date(2025, 3, 21), "fa", "۱۴۰۴/۰۱/۰۱"),
        (date(2021, 3, 20), "fa", "۱۳۹۹/۱۲/۳۰"),
        (date(2025, 3, 20), "en", "2025-03-20"),
    ],
)
def test_format_day(day: date, language: str, shown: str) -> None:
    assert dates.format_day(day, language) == shown
    assert dates.validate(shown) == day


# Form fields ---------------------------------------------------------------------------

DISTRICTS = [1, 2, 3, 6, 12, 22]


@dataclass(frozen=True)
class Label:
    fa: str
    en: str

    def get(self, language: str) -> str:
        return self.fa if language == "fa" else self.en


OPTIONS = [
    SimpleNamespace(key="roof", label=Label("سقف", "Roof")),
    SimpleNamespace(key="facade", label=Label("نما", "Facade")),
    SimpleNamespace(key="interior", label=Label("داخلی", "Interior")),
    SimpleNamespace(key="installations", label=Label("تأسیسات", "Utilities")),
]


def field(kind: str, **overrides: Any) -> SimpleNamespace:
    """A field spec like the catalogue's: key, type, required, bounds, options, texts."""
    attrs: dict[str, Any] = {
        "key": kind,
        "type": kind,
        "required": True,
        "min": None,
        "max": None,
        "max_length": None,
        "options": OPTIONS if kind == "choice" else None,
        "label": Label(f"پرسش {kind}", f"question {kind}"),
        "help": None,
    }
    attrs.update(overrides)
    return SimpleNamespace(**attrs)


FIELD_TYPES = list(CITY_FIELD_TYPES)  # every type config.yaml may use
AREA = field("number", key="area", min=1, max=500)
FLOOR_AREA = field("number", key="floor_area", min=1, max=100000)
PERMIT = field("text", key="permit", max_length=20)


def answer(spec: SimpleNamespace, typed: Any, **kwargs: Any) -> Any:
    return validate_answer(spec, typed, districts=DISTRICTS, **kwargs)


def refused(spec: SimpleNamespace, typed: Any) -> FieldError:
    with pytest.raises(FieldError) as caught:
        answer(spec, typed)
    return caught.value


@pytest.mark.parametrize(
    ("spec", "typed", "expected"),
    [
        (PERMIT, "A-1403-5521", "A-1403-5521"),
        (PERMIT, "  a   b  ", "a b"),
        (PERMIT, "x" * 20, "x" * 20),
        (PERMIT, f"{RLM}پروانه ۱۲{LRM}", "پروانه ۱۲"),
        (field("text"), "x" * 500, "x" * 500),
        *((AREA, t, 120) for t, _ in digit_sets("120")),
        *((AREA, t, 120.5) for t, _ in digit_sets("120٫5")),  # Persian decimal separator
        *((AREA, t, 120.5) for t, _ in digit_sets("120/5")),  # the slash Persians type
        (AREA, "120.5", 120.5),
        (AREA, "۱۲۰٫۵ متر", 120.5),
        (AREA, "12 متر مربع", 12),
        (AREA, "1", 1),
        (AREA, "500", 500),
        (AREA, f"{RLM}۱۲۰{LRM}", 120),
        *((FLOOR_AREA, t, 1200) for t, _ in digit_sets("1,200")),
        *((FLOOR_AREA, t, 1200) for t, _ in digit_sets("1٬200")),  # Persian thousands sep.
        (FLOOR_AREA, "1،200", 1200),
        (FLOOR_AREA, "۱۲٬۳۴۵٫۵", 12345.5),
        (FLOOR_AREA, "100,000", 100000),
        (field("number"), "-3", -3),
        (field("number"), "1,200,000", 1200000),
        *((field("national_id"), t, "0012345679") for t, _ in digit_sets("0012345679")),
        (field("national_id"), "12345679", "0012345679"),
        (field("national_id"), "۰۰۱-۲۳۴۵۶۷-۹", "0012345679"),
        (field("postal_code"), "۱۴۳۵۶-۷۸۹۱۱", "1435678911"),
        (field("postal_code"), "1435678911", "1435678911"),
        (field("mobile"), "۰۹۱۲ ۱۲۳ ۴۵۶۷", TEHRAN_MOBILE),
        (field("mobile"), "+989121234567", TEHRAN_MOBILE),
        *((field("district"), t, 6) for t, _ in digit_sets("6")),
        (field("district"), "منطقه ۶", 6),
        (field("district"), "منطقه۱۲", 12),
        (field("district"), "District 12", 12),
        (field("district"), "٢٢", 22),
        (field("date"), "1403/05/20", "2024-08-10"),
        (field("date"), "۲۰ مرداد ۱۴۰۳", "2024-08-10"),
        (field("date"), "10 Aug 2024", "2024-08-10"),
        (field("date"), "٢٠٢٤-٠٨-١٠", "2024-08-10"),
    ],
)
def test_answer_accepted(spec: SimpleNamespace, typed: str, expected: Any) -> None:
    value = answer(spec, typed)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        *((t, "roof") for t, _ in digit_sets("1")),
        *((t, "facade") for t, _ in digit_sets("2")),
        *((t, "interior") for t, _ in digit_sets("3")),
        ("۴.", "installations"),
        (" ۴ ", "installations"),
        ("سقف", "roof"),
        ("Roof", "roof"),
        ("ROOF", "roof"),
        ("roof", "roof"),  # the key itself
        ("installations", "installations"),
        ("Utilities", "installations"),
        ("تأسیسات", "installations"),
        ("تاسیسات", "installations"),  # without the hamza
        ("داخلي", "interior"),  # Arabic yeh
        ("نما!", "facade"),
    ],
)
def test_choice_by_number_label_or_key(typed: str, key: str) -> None:
    assert answer(field("choice"), typed) == key


@pytest.mark.parametrize("typed", ["شروع نشده", "نازک کاری"])
def test_choice_label_typed_with_space_for_zwnj(typed: str) -> None:
    options = [
        SimpleNamespace(key="not_started", label=Label("شروع‌نشده", "Not started")),
        SimpleNamespace(key="finishing", label=Label("نازک‌کاری", "Finishing")),
    ]
    spec = field("choice", options=options)
    assert answer(spec, typed) == {"شروع نشده": "not_started", "نازک کاری": "finishing"}[typed]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("بله", True),
        ("بلی", True),
        ("بلي", True),
        ("آره", True),
        ("اره", True),
        ("بله!", True),
        ("yes", True),
        ("YES", True),
        ("Yes.", True),
        ("y", True),
        ("ok", True),
        ("خیر", False),
        ("نه", False),
        ("نخیر", False),
        (f"{RLM}خير{LRM}", False),  # Arabic yeh and bidi marks
        ("no", False),
        ("NO", False),
        ("n", False),
    ],
)
def test_yes_no_in_both_languages(typed: str, expected: bool) -> None:
    assert answer(field("yes_no"), typed) is expected


@pytest.mark.parametrize(
    ("spec", "typed", "reply_key", "values"),
    [
        (PERMIT, "x" * 21, "field_text", {"max": "20"}),
        (field("text"), "x" * 501, "field_text", {"max": "500"}),
        *((AREA, t, "field_number", {"min": "1", "max": "500"}) for t, _ in digit_sets("501")),
        (AREA, "0", "field_number", {"min": "1", "max": "500"}),
        (AREA, "-5", "field_number", {"min": "1", "max": "500"}),
        (AREA, "1,200", "field_number", {"min": "1", "max": "500"}),
        (AREA, "abc", "field_number", {"min": "1", "max": "500"}),
        (AREA, "متر", "field_number", {"min": "1", "max": "500"}),
        (field("number", min=0.5, max=2.5), "3", "field_number", {"min": "0.5", "max": "2.5"}),
        (field("number"), "abc", "field_number", {"min": "", "max": ""}),
        (field("national_id"), "0012345678", "field_national_id_checksum", {}),
        (field("national_id"), "۱۱۱۱۱۱۱۱۱۱", "field_national_id_suspicious", {}),
        (field("national_id"), "123", "field_national_id", {}),
        (field("national_id"), "00123a5679", "field_national_id", {}),
        (field("postal_code"), "0123456789", "field_postal_code", {}),
        (field("postal_code"), "1111111111", "field_postal_code_suspicious", {}),
        (field("postal_code"), "143", "field_postal_code", {}),
        (field("mobile"), "02188776655", "field_mobile", {}),
        (field("mobile"), "abc", "field_mobile", {}),
        (field("district"), "23", "field_district", {}),
        (field("district"), "۴", "field_district", {}),  # a real district, not in the list
        (field("district"), "0", "field_district", {}),
        (field("district"), "منطقه", "field_district", {}),
        (field("date"), "1404/12/30", "field_date", {}),
        (field("date"), "hello", "field_date", {}),
        (field("date"), "03/05/20", "field_date", {}),
        (field("choice"), "0", "field_choice", {}),
        (field("choice"), "5", "field_choice", {}),
        (field("choice"), "۵", "field_choice", {}),
        (field("choice"), "roofs", "field_choice", {}),
        (field("choice"), "سقف و نما", "field_choice", {}),
        (field("yes_no"), "maybe", "field_yes_no", {}),
        (field("yes_no"), "شاید", "field_yes_no", {}),
        (field("yes_no"), "yes please", "field_yes_no", {}),
    ],
)
def test_answer_refused_with_reply_key(
    spec: SimpleNamespace, typed: str, reply_key: str, values: dict[str, str]
) -> None:
    error = refused(spec, typed)
    assert error.reply_key == reply_key
    assert error.values == values


@pytest.mark.parametrize("kind", FIELD_TYPES)
@pytest.mark.parametrize("typed", ["", " ", "\n\t", ZWNJ, f"{RLM}{LRM}", None])
def test_empty_answer_is_required_for_every_type(kind: str, typed: str | None) -> None:
    assert refused(field(kind), typed).reply_key == "field_required"


def test_region_reaches_mobile_field() -> None:
    assert answer(field("mobile"), "4155550100", region="US") == "+14155550100"


@pytest.mark.parametrize("spec", [field("number"), field("number", min=1)])
def test_number_too_large_for_a_float_is_refused(spec: SimpleNamespace) -> None:
    assert refused(spec, "9" * 400).reply_key == "field_number"


def test_number_bounds_shown_in_full() -> None:
    spec = field("number", min=1, max=2_000_000)
    assert refused(spec, "3000000").values == {"min": "1", "max": "2000000"}


def test_text_answer_keeps_zwnj() -> None:
    assert answer(field("text"), "درخواست‌های من می‌خواهم") == "درخواست‌های من می‌خواهم"


# Whole forms ---------------------------------------------------------------------------

FORM = [
    field("national_id", key="owner_national_id"),
    field("postal_code"),
    field("district"),
    field("text", key="permit_number", required=False, max_length=20),
    field("mobile"),
    field("number", key="floors", min=1, max=60),
    field("date", key="built_on", required=False),
    field("choice", key="damage"),
    field("yes_no", key="has_permit"),
]


def test_check_form_all_valid_in_persian_digits() -> None:
    typed = {
        "owner_national_id": "۰۰۱-۲۳۴۵۶۷-۹",
        "postal_code": "۱۴۳۵۶-۷۸۹۱۱",
        "district": "منطقه ۶",
        "permit_number": "پ-۱۴۰۳",
        "mobile": "۰۹۱۲ ۱۲۳ ۴۵۶۷",
        "floors": "۴",
        "built_on": "۲۰ مرداد ۱۴۰۳",
        "damage": "۲",
        "has_permit": "بله",
        "not_a_field": "ignored",
    }
    check = check_form(FORM, typed, districts=DISTRICTS)
    assert check.ok
    assert check.problems == []
    assert check.values == {
        "owner_national_id": "0012345679",
        "postal_code": "1435678911",
        "district": 6,
        "permit_number": "پ-۱۴۰۳",
        "mobile": TEHRAN_MOBILE,
        "floors": 4,
        "built_on": "2024-08-10",
        "damage": "facade",
        "has_permit": True,
    }


def test_check_form_lists_every_problem_in_field_order() -> None:
    typed = {
        "owner_national_id": "0012345678",
        "postal_code": "1111111111",
        "district": "23",
        "permit_number": "x" * 21,
        "mobile": "02188776655",
        "floors": "۶۱",
        "built_on": "1404/12/30",
        "damage": "9",
        "has_permit": "maybe",
    }
    check = check_form(FORM, typed, districts=DISTRICTS)
    assert not check.ok
    assert check.values == {}
    assert check.problems == [
        FieldProblem("owner_national_id", "field_national_id_checksum"),
        FieldProblem("postal_code", "field_postal_code_suspicious"),
        FieldProblem("district", "field_district"),
        FieldProblem("permit_number", "field_text", {"max": "20"}),
        FieldProblem("mobile", "field_mobile"),
        FieldProblem("floors", "field_number", {"min": "1", "max": "60"}),
        FieldProblem("built_on", "field_date"),
        FieldProblem("damage", "field_choice"),
        FieldProblem("has_permit", "field_yes_no"),
    ]


def test_check_form_missing_answers() -> None:
    typed = {
        "owner_national_id": None,
        "postal_code": "  ",
        "district": ZWNJ,
        "permit_number": None,
        "floors": 4,  # not a string: read as its text
        "damage": "Roof",
        "has_permit": "no",
    }
    check = check_form(FORM, typed, districts=DISTRICTS)
    assert check.problems == [
        FieldProblem("owner_national_id", "field_required"),
        FieldProblem("postal_code", "field_required"),
        FieldProblem("district", "field_required"),
        FieldProblem("mobile", "field_required"),
    ]
    assert check.values == {
        "permit_number": None,
        "floors": 4,
        "built_on": None,
        "damage": "roof",
        "has_permit": False,
    }


# Every reply key exists in config.yaml -------------------------------------------------

# One answer per kind of error each field type can give.
ERROR_CASES = [
    (field("text"), "", "field_required"),
    (PERMIT, "x" * 21, "field_text"),
    (field("number", min=1, max=60), "61", "field_number"),
    (field("number", min=1, max=60), "abc", "field_number"),
    (field("number"), "abc", "field_number"),
    (field("national_id"), "123", "field_national_id"),
    (field("national_id"), "0012345678", "field_national_id_checksum"),
    (field("national_id"), "0000000000", "field_national_id_suspicious"),
    (field("postal_code"), "0123456789", "field_postal_code"),
    (field("postal_code"), "14356", "field_postal_code"),
    (field("postal_code"), "2222222222", "field_postal_code_suspicious"),
    (field("mobile"), "02188776655", "field_mobile"),
    (field("district"), "abc", "field_district"),
    (field("district"), "99", "field_district"),
    (field("date"), "hello", "field_date"),
    (field("date"), "1404/12/30", "field_date"),
    (field("choice"), "7", "field_choice"),
    (field("yes_no"), "شاید", "field_yes_no"),
]
EVERY_REPLY_KEY = {
    "field_required",
    *(f"field_{kind}" for kind in FIELD_TYPES),
    "field_national_id_checksum",
    "field_national_id_suspicious",
    "field_postal_code_suspicious",
}


def test_error_cases_cover_every_reply_key() -> None:
    assert {reply_key for _, _, reply_key in ERROR_CASES} == EVERY_REPLY_KEY
    assert {spec.type for spec, _, _ in ERROR_CASES} == set(FIELD_TYPES)


@pytest.mark.parametrize(("spec", "typed", "reply_key"), ERROR_CASES)
@pytest.mark.parametrize("language", ["fa", "en"])
def test_every_reply_key_has_a_text(
    city_config: CityConfig, spec: SimpleNamespace, typed: str, reply_key: str, language: str
) -> None:
    error = refused(spec, typed)
    assert error.reply_key == reply_key
    assert error.reply_key in city_config.texts
    assert city_config.text(error.reply_key, language, **error.values)

    check = check_form([spec], {spec.key: typed}, districts=DISTRICTS)
    [problem] = check.problems
    assert problem.reply_key == reply_key
    assert city_config.text(problem.reply_key, language, **problem.values)
