"""Normalisation before matching: one table per rule DESIGN.md names, then properties.

Every keyword, code and argument a citizen types goes through `normalize`, so a rule that
slips here means a Persian keyboard, an Arabic keyboard or a phone's autocorrect sends a
word the gateway does not recognise.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.normalize import normalize, tokens

PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
INVISIBLE = {
    "ZWNJ": "\u200c",
    "ZWJ": "\u200d",
    "ZWSP": "\u200b",
    "tatweel": "\u0640",
    "LRM": "\u200e",
    "RLM": "\u200f",
    "LRE": "\u202a",
    "RLE": "\u202b",
    "PDF": "\u202c",
    "LRO": "\u202d",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "RLI": "\u2067",
    "FSI": "\u2068",
    "PDI": "\u2069",
    "ALM": "\u061c",
    "BOM": "\ufeff",
}
ARABIC_DIACRITICS = {
    "fatha": "\u064e",
    "kasra": "\u0650",
    "damma": "\u064f",
    "shadda": "\u0651",
    "sukun": "\u0652",
    "fathatan": "\u064b",
    "dammatan": "\u064c",
    "kasratan": "\u064d",
}


# Digits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (PERSIAN_DIGITS, "0123456789"),
        (ARABIC_INDIC_DIGITS, "0123456789"),
        ("۴۸۲۱ ۳۳۰۷ ۶۶۳۴", "4821 3307 6634"),
        ("٤٨٢١-٣٣٠٧-٦٦٣٤", "4821-3307-6634"),
        ("۱۲3٤", "1234"),  # mixed keyboards in one token
        ("０１２", "012"),  # fullwidth digits via NFKC
    ],
)
def test_digits_fold_to_ascii(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


# Letters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("ي", "ی"),  # Arabic yeh
        ("ك", "ک"),  # Arabic kaf
        ("ى", "ی"),  # alef maksura
        ("كمك", "کمک"),
        ("وضعيت", "وضعیت"),
        ("پيگيري", "پیگیری"),
        ("ﻱ", "ی"),  # Arabic yeh, isolated presentation form
    ],
)
def test_arabic_letter_forms_fold_to_persian(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


# Invisible characters -----------------------------------------------------------------


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_characters_dropped(char: str) -> None:
    assert normalize(f"پی{char}گیری") == "پیگیری"
    assert normalize(f"{char}STATUS{char}") == "status"


def test_zwnj_word_matches_word_without_it() -> None:
    assert normalize("می\u200cخواهم") == normalize("میخواهم") == "میخواهم"


def test_tatweel_stretched_word_matches_plain() -> None:
    assert normalize("وضـــعیت") == "وضعیت"


# Diacritics ---------------------------------------------------------------------------


@pytest.mark.parametrize("mark", ARABIC_DIACRITICS.values(), ids=ARABIC_DIACRITICS.keys())
def test_arabic_diacritics_dropped(mark: str) -> None:
    assert normalize(f"سل{mark}ام") == "سلام"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Café", "cafe"),
        ("ÉTAT", "etat"),
        ("naïve", "naive"),
        ("São", "sao"),
        ("Cafe\u0301", "cafe"),  # decomposed accent
    ],
)
def test_latin_accents_dropped(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


# Case ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("STATUS", "status"),
        ("sTaTuS", "status"),
        ("Help", "help"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # full case folding, not just lower()
        ("LANG EN", "lang en"),
    ],
)
def test_case_folded(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


# NFKC ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("ＨＥＬＰ", "help"),  # fullwidth Latin
        ("ｓｔａｔｕｓ", "status"),
        ("\ufe8e", "ا"),  # alef, final form
        ("\ufe8d", "ا"),  # alef, isolated form
        ("\ufef5", "لا"),  # lam-alef-madda ligature: NFKC, then the madda is a diacritic
        ("\ufefb", "لا"),  # lam-alef ligature, isolated
        ("\ufb8f", "ک"),  # keheh, final form
        ("ﬁle", "file"),  # Latin ligature
    ],
)
def test_nfkc_compatibility_forms(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


# Punctuation and whitespace -----------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("HELP!", "help"),
        ("help?!", "help"),
        ("«وضعیت»", "وضعیت"),
        ("؟راهنما؟", "راهنما"),
        ("(STATUS)", "status"),
        ('"stop".', "stop"),
        ("زبان، EN.", "زبان en"),
        ("4821-3307-6634", "4821-3307-6634"),  # '-' inside a token kept
        ("«۴۸۲۱-۳۳۰۷-۶۶۳۴»", "4821-3307-6634"),
        ("+98912", "+98912"),
        ("!!!", ""),
    ],
)
def test_surrounding_punctuation_trimmed(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("  status   4821 ", "status 4821"),
        ("status\t\n4821", "status 4821"),
        ("status\u00a04821", "status 4821"),  # no-break space
        ("status\u30004821", "status 4821"),  # ideographic space
        ("   ", ""),
        ("", ""),
    ],
)
def test_whitespace_collapsed(typed: str, expected: str) -> None:
    assert normalize(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (" STATUS  ۴۸۲۱ ۳۳۰۷ ", ["status", "4821", "3307"]),
        ("«لغو» ۱۱", ["لغو", "11"]),
        ("زبان\u200c EN", ["زبان", "en"]),
        ("", []),
        ("  \u200c  ", []),
        ("! ? ،", []),
    ],
)
def test_tokens_split_normalised_text(typed: str, expected: list[str]) -> None:
    assert tokens(typed) == expected


def test_non_text_normalises_to_empty() -> None:
    assert normalize(None) == ""  # type: ignore[arg-type]
    assert tokens(None) == []  # type: ignore[arg-type]


# Properties ---------------------------------------------------------------------------

ARABIC_BLOCKS = st.one_of(
    st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),  # Arabic
    st.characters(min_codepoint=0x0750, max_codepoint=0x077F),  # Arabic Supplement
    st.characters(min_codepoint=0xFB50, max_codepoint=0xFDFF),  # Presentation Forms-A
    st.characters(min_codepoint=0xFE70, max_codepoint=0xFEFF),  # Presentation Forms-B
)
FORMAT_AND_PUNCT = st.sampled_from([*INVISIBLE.values(), *" \t!?.,«»()-_؟،؛+"])
LATIN_ACCENTED = st.characters(min_codepoint=0x00C0, max_codepoint=0x024F)
MIXED_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.one_of(ARABIC_BLOCKS, FORMAT_AND_PUNCT)),
    st.text(alphabet=st.one_of(ARABIC_BLOCKS, FORMAT_AND_PUNCT, LATIN_ACCENTED, st.characters())),
)
NEVER_IN_OUTPUT = set(
    PERSIAN_DIGITS + ARABIC_INDIC_DIGITS + "يكى" + "".join(INVISIBLE.values())
) | set(ARABIC_DIACRITICS.values())


@settings(max_examples=500)
@given(MIXED_TEXT)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=500)
@given(MIXED_TEXT)
def test_normalize_never_raises_and_returns_str(text: str) -> None:
    assert isinstance(normalize(text), str)


@settings(max_examples=500)
@given(MIXED_TEXT)
def test_normalize_output_has_no_invisible_or_foreign_digits(text: str) -> None:
    out = normalize(text)
    assert not NEVER_IN_OUTPUT & set(out)
    assert not any(unicodedata.combining(ch) for ch in out)
    assert out == out.strip()
    assert "  " not in out


@given(MIXED_TEXT)
def test_tokens_are_the_words_of_normalize(text: str) -> None:
    words = tokens(text)
    assert " ".join(words) == normalize(text)
    assert all(word and " " not in word for word in words)
