"""Tracking codes: twelve digits, ISO 7064 MOD 97-10 check digits, typed any which way.

A citizen reads a code off a receipt and types it on a phone, in whatever digits the
keyboard has, with or without the spaces. A mistyped code must be told apart from an
unknown one, and no code may pass for a 10-digit national ID or an 11-digit mobile.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.iso7064 import mod_97_10

from parsers import tracking
from parsers.display import persian_digits
from parsers.errors import InvalidChecksum, InvalidFormat, InvalidLength, ParseError

VALID = "482133076634"
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(
    "typed",
    [
        "482133076634",
        "4821 3307 6634",
        "4821-3307-6634",
        "  4821 3307 6634  ",
        "4821  -  3307 6634",
        "4821.3307.6634",
        "4821—3307–6634",  # em and en dashes from autocorrect
        "۴۸۲۱۳۳۰۷۶۶۳۴",
        "۴۸۲۱ ۳۳۰۷ ۶۶۳۴",
        "۴۸۲۱-۳۳۰۷-۶۶۳۴",
        "٤٨٢١٣٣٠٧٦٦٣٤",
        "٤٨٢١ ٣٣٠٧ ٦٦٣٤",
        "۴۸۲۱ 3307 ٦٦٣٤",  # three keyboards in one code
        "\u200f۴۸۲۱\u200c۳۳۰۷\u200c۶۶۳۴\u200e",  # ZWNJ and bidi marks from a Persian phone
    ],
)
def test_valid_code_in_any_digits_and_spacing(typed: str) -> None:
    assert tracking.validate(typed) == VALID
    assert tracking.is_valid(typed)
    assert tracking.looks_like_code(typed)


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("4821 3307 6635", InvalidChecksum),  # last digit changed
        ("5821 3307 6634", InvalidChecksum),  # first digit changed
        ("4821 3307 6643", InvalidChecksum),  # check digits swapped
        ("4812 3307 6634", InvalidChecksum),  # two adjacent digits swapped
        ("۴۸۲۱ ۳۳۰۷ ۶۶۳۵", InvalidChecksum),
        ("4821 3307 663", InvalidLength),  # 11 digits: looks like a mobile
        ("4821 3307 66341", InvalidLength),
        ("0012345678", InvalidLength),  # a 10-digit national ID
        ("09121234567", InvalidLength),  # an 11-digit mobile
        ("1234", InvalidLength),
        ("4821 3307 663A", InvalidFormat),
        ("STATUS 4821 3307 6634", InvalidFormat),
        ("abcd efgh ijkl", InvalidFormat),
        ("+482133076634", InvalidFormat),
        ("", InvalidFormat),
        ("   ", InvalidFormat),
        ("😀", InvalidFormat),
    ],
)
def test_invalid_code_raises_the_error_for_its_reply(typed: str, error: type[ParseError]) -> None:
    with pytest.raises(error) as caught:
        tracking.validate(typed)
    assert isinstance(caught.value, ParseError)
    assert caught.value.reply_key == error.reply_key
    assert not tracking.is_valid(typed)


def test_mistyped_code_is_told_apart_from_wrong_shape() -> None:
    assert InvalidChecksum.reply_key != InvalidLength.reply_key != InvalidFormat.reply_key
    assert tracking.looks_like_code("4821 3307 6635")  # still read as a code...
    assert not tracking.is_valid("4821 3307 6635")  # ...with a typo in it


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("4821 3307 6634", True),
        ("4821 3307 6635", True),  # wrong check digits are still a code
        ("۴۸۲۱-۳۳۰۷-۶۶۳۴", True),
        ("482133076634", True),
        ("4821 3307 663", False),
        ("09121234567", False),
        ("1234", False),
        ("4821 3307 663A", False),
        ("", False),
    ],
)
def test_looks_like_code(typed: str, expected: bool) -> None:
    assert tracking.looks_like_code(typed) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("482133076634", "4821 3307 6634"),
        ("۴۸۲۱۳۳۰۷۶۶۳۴", "4821 3307 6634"),
        ("4821-3307-6634", "4821 3307 6634"),
    ],
)
def test_format_code_groups_by_four(code: str, expected: str) -> None:
    assert tracking.format_code(code) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("٤٨٢١-٣٣٠٧-٦٦٣٤", "482133076634"),
        (" 4821 3307 6634 ", "482133076634"),
        ("۴۸۲۱\u200c۳۳۰۷", "48213307"),
    ],
)
def test_compact(typed: str, expected: str) -> None:
    assert tracking.compact(typed) == expected


# generate() ---------------------------------------------------------------------------


def test_generated_codes_are_twelve_digits_with_valid_check_digits() -> None:
    codes = {tracking.generate() for _ in range(2000)}
    assert len(codes) > 1990  # random, not a counter or a constant
    for code in codes:
        assert len(code) == 12
        assert code.isascii() and code.isdigit()
        assert code[0] != "0"  # never shrinks to an 11-digit number
        assert len(str(int(code))) == 12
        assert mod_97_10.is_valid(code)
        assert tracking.validate(code) == code


def test_generated_code_round_trips_through_every_written_form() -> None:
    for _ in range(200):
        code = tracking.generate()
        shown = tracking.format_code(code)
        assert tracking.validate(shown) == code
        assert tracking.validate(persian_digits(shown)) == code
        assert tracking.validate(shown.translate(ARABIC_INDIC).replace(" ", "-")) == code


def _substitutions(code: str) -> list[str]:
    return [
        code[:i] + digit + code[i + 1 :]
        for i in range(len(code))
        for digit in "0123456789"
        if digit != code[i]
    ]


def _adjacent_swaps(code: str) -> list[str]:
    return [
        code[:i] + code[i + 1] + code[i] + code[i + 2 :]
        for i in range(len(code) - 1)
        if code[i] != code[i + 1]
    ]


def test_every_single_digit_typo_in_generated_codes_is_caught() -> None:
    for _ in range(300):
        code = tracking.generate()
        for typo in _substitutions(code) + _adjacent_swaps(code):
            with pytest.raises(InvalidChecksum):
                tracking.validate(typo)


# Codes built by the standard's reference implementation (python-stdnum) from any body.
BODIES = st.integers(min_value=10**9, max_value=10**10 - 1).map(str)


@settings(max_examples=300)
@given(BODIES)
def test_any_well_formed_code_validates(body: str) -> None:
    code = body + mod_97_10.calc_check_digits(body)
    assert tracking.validate(tracking.format_code(code)) == code


@settings(max_examples=300)
@given(BODIES, st.integers(min_value=0, max_value=11), st.integers(min_value=1, max_value=9))
def test_single_digit_substitution_is_always_detected(body: str, position: int, delta: int) -> None:
    code = body + mod_97_10.calc_check_digits(body)
    wrong = str((int(code[position]) + delta) % 10)
    typo = code[:position] + wrong + code[position + 1 :]
    with pytest.raises(InvalidChecksum):
        tracking.validate(typo)


@settings(max_examples=300)
@given(BODIES, st.integers(min_value=0, max_value=10))
def test_adjacent_transposition_is_always_detected(body: str, position: int) -> None:
    code = body + mod_97_10.calc_check_digits(body)
    swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
    if swapped == code:
        return  # swapping two equal digits is no typo
    with pytest.raises(InvalidChecksum):
        tracking.validate(swapped)


@given(st.text())
def test_validate_raises_only_parse_errors(text: str) -> None:
    try:
        code = tracking.validate(text)
    except ParseError:
        assert not tracking.is_valid(text)
    else:
        assert len(code) == 12 and code.isascii() and code.isdigit()
