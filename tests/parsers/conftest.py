"""Fixtures for the parser tests: a keyword table built like the app's."""

from __future__ import annotations

import pytest

from parsers.grammar import KeywordTable

# Mirrors `commands:` in config.yaml.
TRIPLES = [
    ("help", "fa", "راهنما"),
    ("help", "fa", "کمک"),
    ("help", "en", "HELP"),
    ("help", "en", "INFO"),
    ("status", "fa", "وضعیت"),
    ("status", "fa", "پیگیری"),
    ("status", "en", "STATUS"),
    ("status", "en", "TRACK"),
    ("stop", "fa", "لغو"),
    ("stop", "fa", "11"),
    ("stop", "fa", "لغو 11"),
    ("stop", "en", "STOP"),
    ("stop", "en", "CANCEL"),
    ("start", "fa", "شروع"),
    ("start", "fa", "12"),
    ("start", "en", "START"),
    ("lang", "fa", "زبان"),
    ("lang", "en", "LANG"),
]
TABLE = KeywordTable.build(TRIPLES)


@pytest.fixture(scope="session")
def keyword_triples() -> list[tuple[str, str, str]]:
    """(command, language, keyword) triples as `CityConfig.keyword_triples()` gives them."""
    return list(TRIPLES)


@pytest.fixture(scope="session")
def table(keyword_triples: list[tuple[str, str, str]]) -> KeywordTable:
    return KeywordTable.build(keyword_triples)
