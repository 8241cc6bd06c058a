"""SMS segment budgets: a reply one character too long costs the city a second SMS.

GSM-7 holds 160 characters, 153 per part of a multi-part message; UCS-2 (any Persian
letter or emoji) holds 70, 67 per part. GSM extension characters count twice.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.segments import budget, is_gsm7, segments, units

PERSIAN = "س"


@pytest.mark.parametrize(
    ("text", "gsm"),
    [
        ("Hello", True),
        ("Your code: 4821 3307 6634.", True),
        ("Café @ 10:00 £5 ¥ §", True),  # accented letters of the GSM alphabet
        ("line one\nline two", True),
        ("{braces} [brackets] ~ | ^ \\ €", True),  # extension table
        ("", True),
        ("سلام", False),
        ("Code ۴۸۲۱", False),  # one Persian digit is enough
        ("Status: وضعیت", False),
        ("naïve", False),  # ï is not in GSM 03.38
        ("`backtick`", False),
        ("ok 👍", False),
        ("\u200c", False),  # an invisible ZWNJ still forces UCS-2
    ],
)
def test_gsm7_or_ucs2(text: str, gsm: bool) -> None:
    assert is_gsm7(text) is gsm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 1),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 459, 3),
        ("a" * 460, 4),
        (PERSIAN * 70, 1),
        (PERSIAN * 71, 2),
        (PERSIAN * 134, 2),
        (PERSIAN * 135, 3),
        (PERSIAN * 201, 3),
        (PERSIAN * 202, 4),
        ("a" * 69 + PERSIAN, 1),  # one Persian letter makes the whole text UCS-2
        ("a" * 70 + PERSIAN, 2),
        ("a" * 159 + "۱", 3),
    ],
)
def test_segment_boundaries(text: str, expected: int) -> None:
    assert segments(text) == expected


@pytest.mark.parametrize(
    ("text", "expected_units", "expected_segments"),
    [
        ("€", 2, 1),
        ("[]", 4, 1),
        ("€" * 80, 160, 1),
        ("€" * 81, 162, 2),
        ("a" * 159 + "€", 161, 2),
        ("a" * 158 + "[", 160, 1),
        ("{" * 153, 306, 2),
        ("{" * 154, 308, 3),
    ],
)
def test_extension_characters_count_double(
    text: str, expected_units: int, expected_segments: int
) -> None:
    assert units(text) == expected_units
    assert segments(text) == expected_segments


@pytest.mark.parametrize(
    ("text", "expected_units", "expected_segments"),
    [
        ("👍", 2, 1),
        ("a" * 68 + "👍", 70, 1),
        ("a" * 69 + "👍", 71, 2),
        ("a" * 159 + "👍", 161, 3),  # the emoji takes the GSM text from 1 to 3 parts
        (PERSIAN * 68 + "😀", 70, 1),
        (PERSIAN * 69 + "😀", 71, 2),
        ("😀" * 35, 70, 1),
        ("😀" * 36, 72, 2),
    ],
)
def test_emoji_forces_ucs2_and_counts_as_two_units(
    text: str, expected_units: int, expected_segments: int
) -> None:
    assert not is_gsm7(text)
    assert units(text) == expected_units
    assert segments(text) == expected_segments


@pytest.mark.parametrize(
    ("max_segments", "text", "expected"),
    [
        (1, "", 70),  # unknown text: plan for Persian
        (2, "", 134),
        (3, "سلام", 201),
        (1, "hello", 160),
        (2, "hello", 306),
    ],
)
def test_budget(max_segments: int, text: str, expected: int) -> None:
    assert budget(max_segments, text) == expected


@given(st.integers(min_value=1, max_value=5), st.sampled_from(["a", "€", PERSIAN, "😀"]))
def test_text_filling_its_budget_fits_and_one_more_does_not(max_segments: int, char: str) -> None:
    text = char * (budget(max_segments, char) // units(char))
    assert segments(text) == max_segments
    assert segments(text + char) == max_segments + 1


@given(st.text(), st.text(min_size=1))
def test_longer_text_never_takes_fewer_segments(text: str, more: str) -> None:
    assert units(text) >= len(text)
    assert 1 <= segments(text) <= segments(text + more)
