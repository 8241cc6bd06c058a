"""Junk in, no crash out: every public parser takes the same ugly inputs.

Each parser either returns or raises a `ParseError` (whose reply key a citizen is sent);
never TypeError, AttributeError, OverflowError, RecursionError or any other exception,
and never a hang: each parser's whole run over the inputs is bounded by a timer.
Functions typed to take only `str` and not meant for raw input get only the strings.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.city import FIELD_TYPES as CITY_FIELD_TYPES
from gateway.settings import CityConfig
from parsers import (
    addresses,
    dates,
    display,
    fields,
    grammar,
    mobile,
    national_id,
    normalize,
    postal_code,
    segments,
    tracking,
)
from parsers.errors import ParseError
from parsers.grammar import KeywordTable

SECONDS_PER_PARSER = 20
CONTROL_CHARS = "".join(chr(c) for c in [*range(32), 127])

JUNK: list[object] = [
    None,
    b"bytes",
    123,
    "",
    " ",
    "۱۲۳",
    "٤٥٦",
    "🙂" * 500,
    "\x00",
    "\u200c\u200f\u202e",
    "x" * 100_000,
    "لغو" * 10_000,
    "1 " * 50_000,
    CONTROL_CHARS,
]
STRINGS = [value for value in JUNK if isinstance(value, str)]
DISTRICTS = list(range(1, 23))


@dataclass(frozen=True)
class Label:
    fa: str
    en: str

    def get(self, language: str) -> str:
        return self.fa if language == "fa" else self.en


def field(kind: str) -> SimpleNamespace:
    options = [
        SimpleNamespace(key="roof", label=Label("سقف", "Roof")),
        SimpleNamespace(key="facade", label=Label("نما", "Facade")),
    ]
    return SimpleNamespace(
        key=kind,
        type=kind,
        required=True,
        min=1,
        max=500,
        max_length=20,
        options=options if kind == "choice" else None,
        label=Label(kind, kind),
        help=None,
    )


FIELD_TYPES = list(CITY_FIELD_TYPES)  # every type config.yaml may use

Call = Callable[[Any, KeywordTable], object]


def plain(function: Callable[[Any], object]) -> Call:
    return lambda value, _table: function(value)


def answer(kind: str) -> Call:
    spec = field(kind)
    return lambda value, _table: fields.validate_answer(spec, value, districts=DISTRICTS)


def form(kind: str) -> Call:
    spec = field(kind)
    return lambda value, _table: fields.check_form([spec], {kind: value}, districts=DISTRICTS)


PARSERS = [
    pytest.param(plain(normalize.normalize), JUNK, id="normalize.normalize"),
    pytest.param(plain(normalize.tokens), JUNK, id="normalize.tokens"),
    pytest.param(plain(normalize.fold_digits), STRINGS, id="normalize.fold_digits"),
    pytest.param(plain(tracking.compact), JUNK, id="tracking.compact"),
    pytest.param(plain(tracking.validate), JUNK, id="tracking.validate"),
    pytest.param(plain(tracking.is_valid), JUNK, id="tracking.is_valid"),
    pytest.param(plain(tracking.looks_like_code), JUNK, id="tracking.looks_like_code"),
    pytest.param(plain(tracking.format_code), JUNK, id="tracking.format_code"),
    pytest.param(grammar.parse, JUNK, id="grammar.parse"),
    pytest.param(plain(segments.segments), JUNK, id="segments.segments"),
    pytest.param(plain(segments.is_gsm7), JUNK, id="segments.is_gsm7"),
    pytest.param(plain(segments.units), JUNK, id="segments.units"),
    pytest.param(plain(addresses.normalize_phone), JUNK, id="addresses.normalize_phone"),
    pytest.param(plain(addresses.normalize_email), JUNK, id="addresses.normalize_email"),
    pytest.param(plain(addresses.mask), JUNK, id="addresses.mask"),
    pytest.param(plain(display.guess_language), JUNK, id="display.guess_language"),
    pytest.param(plain(display.persian_digits), STRINGS, id="display.persian_digits"),
    *(
        pytest.param(plain(function), JUNK, id=name)
        for name, function in [
            ("national_id.validate", national_id.validate),
            ("national_id.is_valid", national_id.is_valid),
            ("national_id.compact", national_id.compact),
            ("national_id.format_id", national_id.format_id),
            ("postal_code.validate", postal_code.validate),
            ("postal_code.is_valid", postal_code.is_valid),
            ("postal_code.compact", postal_code.compact),
            ("postal_code.format_code", postal_code.format_code),
        ]
    ),
    pytest.param(plain(mobile.validate), JUNK, id="mobile.validate"),
    pytest.param(plain(mobile.is_valid), JUNK, id="mobile.is_valid"),
    pytest.param(plain(dates.validate), JUNK, id="dates.validate"),
    pytest.param(plain(dates.is_valid), JUNK, id="dates.is_valid"),
    *(
        pytest.param(answer(kind), JUNK, id=f"fields.validate_answer[{kind}]")
        for kind in FIELD_TYPES
    ),
    *(pytest.param(form(kind), JUNK, id=f"fields.check_form[{kind}]") for kind in FIELD_TYPES),
]


class TookTooLong(BaseException):
    """Raised by the timer; a BaseException so no `except Exception` in a parser eats it."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TookTooLong(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}… ({len(text)} chars of repr)"


@pytest.fixture(scope="module")
def keyword_table(city_config: CityConfig) -> KeywordTable:
    return KeywordTable.build(city_config.keyword_triples())


@pytest.mark.parametrize(("call", "inputs"), PARSERS)
def test_junk_gives_an_answer_or_a_parse_error(
    call: Call, inputs: list[object], keyword_table: KeywordTable
) -> None:
    crashes = []
    with time_limit(SECONDS_PER_PARSER):
        for value in inputs:
            try:
                call(value, keyword_table)
            except ParseError:
                continue
            except Exception as exc:
                crashes.append(f"{shown(value)} -> {type(exc).__name__}: {exc}")
    assert not crashes, "\n".join(crashes)
