"""The command grammar: what a citizen's message runs, and what it must never run.

Keywords match whole tokens after normalisation, then a keyword glued to its code, then
a bare code is a status request; a typo only ever yields "did you mean …?".
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.grammar import KeywordTable, ParsedCommand, parse

CODE = "482133076634"


@pytest.mark.parametrize(
    ("text", "command", "language", "args"),
    [
        ("STATUS", "status", "en", ()),
        ("status", "status", "en", ()),
        ("sTaTuS", "status", "en", ()),
        ("ＳＴＡＴＵＳ", "status", "en", ()),
        ("Status!", "status", "en", ()),
        ("help", "help", "en", ()),
        ("Help?", "help", "en", ()),
        ("وضعیت", "status", "fa", ()),
        ("وضعيت", "status", "fa", ()),  # Arabic yeh
        ("پي\u200cگيري", "status", "fa", ()),  # Arabic yeh and ZWNJ
        ("وضـــعیت", "status", "fa", ()),  # tatweel
        ("\u200fوضعیت\u200e", "status", "fa", ()),  # bidi marks
        ("«راهنما»", "help", "fa", ()),
        ("كمك", "help", "fa", ()),  # Arabic kaf
        ("لغو", "stop", "fa", ()),
        ("لغو 11", "stop", "fa", ()),
        ("لغو ۱۱", "stop", "fa", ()),
        ("11", "stop", "fa", ()),
        ("۱۱", "stop", "fa", ()),
        ("12", "start", "fa", ()),
        ("١٢", "start", "fa", ()),
        ("STOP", "stop", "en", ()),
        ("stop.", "stop", "en", ()),
        ("CANCEL", "stop", "en", ()),
        ("شروع", "start", "fa", ()),
        ("LANG EN", "lang", "en", ("en",)),
        ("زبان fa", "lang", "fa", ("fa",)),
        ("STATUS 4821 3307 6634", "status", "en", (CODE,)),
        ("status 482133076634 1234", "status", "en", (CODE, "1234")),
        ("status 4821 3307 6634 1234", "status", "en", (CODE, "1234")),
        ("وضعیت ۴۸۲۱ ۳۳۰۷ ۶۶۳۴", "status", "fa", (CODE,)),
        ("وضعيت ٤٨٢١ ٣٣٠٧ ٦٦٣٤ ١٢٣٤", "status", "fa", (CODE, "1234")),
        ("status 4821-3307 6634", "status", "en", (CODE,)),
    ],
)
def test_exact_keyword(
    table: KeywordTable, text: str, command: str, language: str, args: tuple[str, ...]
) -> None:
    parsed = parse(text, table)
    assert (parsed.command, parsed.language, parsed.args) == (command, language, args)
    assert parsed.matched_by == "exact"
    assert parsed.suggestion is None


@pytest.mark.parametrize(
    ("text", "command", "args"),
    [
        ("STATUS482133076634", "status", (CODE,)),
        ("status4821-3307-6634", "status", (CODE,)),
        ("وضعيت۴۸۲۱۳۳۰۷۶۶۳۴", "status", (CODE,)),
        ("وضعیت٤٨٢١٣٣٠٧٦٦٣٤ ۱۲۳۴", "status", (CODE, "1234")),
        ("status4821 3307 6634", "status", (CODE,)),
    ],
)
def test_keyword_glued_to_code_matched_by_alias(
    table: KeywordTable, text: str, command: str, args: tuple[str, ...]
) -> None:
    parsed = parse(text, table)
    assert (parsed.command, parsed.args, parsed.matched_by) == (command, args, "alias")


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("482133076634", (CODE,)),
        ("4821 3307 6634", (CODE,)),
        ("۴۸۲۱ ۳۳۰۷ ۶۶۳۴", (CODE,)),
        ("482133076634 1234", (CODE, "1234")),
        ("4821 3307 6634 1234", (CODE, "1234")),
        ("٤٨٢١ ٣٣٠٧ ٦٦٣٤ ١٢٣٤", (CODE, "1234")),
        ("4821 3307 6635", ("482133076635",)),  # a typo is still a status request
    ],
)
def test_bare_code_is_a_status_request(
    table: KeywordTable, text: str, args: tuple[str, ...]
) -> None:
    parsed = parse(text, table)
    assert (parsed.command, parsed.args, parsed.matched_by) == ("status", args, "code")


@pytest.mark.parametrize(
    "text",
    [
        "4821 3307 663",  # 11 digits
        "09121234567",  # a mobile number
        "0012345678",  # a national ID
        "482133076634 1234 5678",  # code and more than a PIN
    ],
)
def test_other_numbers_are_not_status_requests(table: KeywordTable, text: str) -> None:
    assert parse(text, table).command is None


@pytest.mark.parametrize(
    "text",
    ["stopwatch", "helpful", "statusquo", "stopping by", "starter", "languages", "لغوی", "111"],
)
def test_keywords_match_whole_tokens_only(table: KeywordTable, text: str) -> None:
    parsed = parse(text, table)
    assert parsed.command is None
    assert parsed.matched_by == "none"


@pytest.mark.parametrize(
    ("text", "suggestion", "suggested_command"),
    [
        ("STAUTS", "STATUS", "status"),
        ("statsu 4821 3307 6634", "STATUS", "status"),
        ("hlep", "HELP", "help"),
        ("Halp", "HELP", "help"),
        ("stpo", "STOP", "stop"),
        ("وضعیتت", "وضعیت", "status"),
        ("وضعيتت", "وضعیت", "status"),
        ("راهنمایی", "راهنما", "help"),
    ],
)
def test_typo_suggests_and_never_runs(
    table: KeywordTable, text: str, suggestion: str, suggested_command: str
) -> None:
    parsed = parse(text, table)
    assert parsed.command is None
    assert parsed.args == ()
    assert (parsed.suggestion, parsed.suggestion_command) == (suggestion, suggested_command)


@pytest.mark.parametrize("text", ["", "   ", "\u200c", "!!!", "hello there", "😀", "\x00"])
def test_nothing_to_run(table: KeywordTable, text: str) -> None:
    parsed = parse(text, table)
    assert parsed.command is None
    assert parsed.text == text


def test_non_text_is_an_empty_message(table: KeywordTable) -> None:
    assert parse(None, table).command is None  # type: ignore[arg-type]
    assert parse(b"STOP", table).command is None  # type: ignore[arg-type]


def test_empty_table_runs_only_bare_codes() -> None:
    empty = KeywordTable.build([])
    assert parse("STATUS", empty).command is None
    assert parse("4821 3307 6634", empty).command == "status"


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"parse took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Never raises -------------------------------------------------------------------------

JUNK = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0x0600, max_codepoint=0x06FF) | st.just(" ")),
    st.text(alphabet=st.sampled_from([*"0123456789۰۱۲۳۴۵۶۷۸۹ -\u200c", "\x00", "😀"])),
    st.binary().map(lambda raw: raw.decode("latin-1")),
)


@settings(max_examples=500)
@given(JUNK)
def test_parse_never_raises_and_only_suggests_on_fuzzy(table: KeywordTable, text: str) -> None:
    parsed = parse(text, table)
    assert isinstance(parsed, ParsedCommand)
    if parsed.command is None:
        assert parsed.args == ()
    else:
        assert parsed.matched_by in {"exact", "alias", "code"}
        assert parsed.suggestion is None
    if parsed.suggestion is not None:
        assert parsed.command is None


@pytest.mark.parametrize(
    "text",
    ["a" * 100_000, "😀" * 100_000, "4" * 100_000, "۴" * 100_000, "\x00" * 100_000],
)
def test_huge_single_token_messages(table: KeywordTable, text: str) -> None:
    with time_limit(2.0):
        assert isinstance(parse(text, table), ParsedCommand)


@pytest.mark.parametrize(
    "text",
    ["word " * 3_000, "status " + "1 " * 1_000, "1 " * 50_000],
    ids=["3000-words", "status-and-1000-numbers", "100k-chars-of-numbers"],
)
def test_many_word_messages_parse_quickly(table: KeywordTable, text: str) -> None:
    with time_limit(1.0):
        assert isinstance(parse(text, table), ParsedCommand)
