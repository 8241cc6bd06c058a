"""Keyword tables: no keyword for two commands, no carrier word for the wrong command.

An operator adding a keyword, or an engineer editing config.yaml, learns here (and from
the same check at run time) that STATUS is taken, that CANCEL is the carrier's, or that a
typo of one keyword could be suggested as another.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import load_city_config
from parsers.grammar import check_keywords

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def _errors(triples: list[tuple[str, str, str]]) -> list[str]:
    return [p.reason for p in check_keywords(triples) if p.severity == "error"]


def test_table_mirroring_config_has_no_problems(
    keyword_triples: list[tuple[str, str, str]],
) -> None:
    assert check_keywords(keyword_triples) == []


@pytest.mark.parametrize(
    "second",
    [
        ("help", "en", "STATUS"),
        ("help", "en", "status!"),
        ("help", "fa", "وضعيت"),  # same word in Arabic letter forms
        ("help", "fa", "وض\u200cعیت"),
    ],
)
def test_keyword_claimed_by_two_commands_is_an_error(second: tuple[str, str, str]) -> None:
    problems = check_keywords([("status", "en", "STATUS"), ("status", "fa", "وضعیت"), second])
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1
    assert errors[0].command == "help"
    assert "already a keyword of command 'status'" in errors[0].reason


def test_same_keyword_twice_for_one_command_is_no_error() -> None:
    assert _errors([("status", "en", "STATUS"), ("status", "fa", "status")]) == []


@pytest.mark.parametrize(
    ("keyword", "command", "meaning"),
    [
        ("STOP", "exit", "stop"),
        ("CANCEL", "exit", "stop"),
        ("cancel", "status", "stop"),
        ("UNSUBSCRIBE", "lang", "stop"),
        ("QUIT", "exit", "stop"),
        ("END", "exit", "stop"),
        ("YES", "confirm", "start"),
        ("START", "status", "start"),
        ("HELP", "status", "help"),
        ("INFO", "status", "help"),
        ("لغو", "exit", "stop"),
        ("لغو 11", "exit", "stop"),
        ("11", "status", "stop"),
        ("۱۱", "status", "stop"),
        ("12", "status", "start"),
    ],
)
def test_carrier_word_given_to_another_command_is_an_error(
    keyword: str, command: str, meaning: str
) -> None:
    [problem] = check_keywords([(command, "en", keyword)])
    assert problem.severity == "error"
    assert (problem.keyword, problem.command) == (keyword, command)
    assert "carrier word" in problem.reason
    assert f"meaning '{meaning}'" in problem.reason


@pytest.mark.parametrize(
    ("command", "keyword"),
    [
        ("stop", "STOP"),
        ("stop", "CANCEL"),
        ("stop", "لغو"),
        ("stop", "11"),
        ("start", "START"),
        ("start", "12"),
        ("help", "HELP"),
        ("help", "INFO"),
    ],
)
def test_carrier_word_on_its_own_command_is_fine(command: str, keyword: str) -> None:
    assert check_keywords([(command, "en", keyword)]) == []


@pytest.mark.parametrize("keyword", ["", "   ", "!!", "\u200c"])
def test_empty_keyword_is_an_error(keyword: str) -> None:
    assert _errors([("status", "en", keyword)]) == ["empty after normalisation"]


def test_keyword_that_looks_like_a_tracking_code_is_an_error() -> None:
    assert _errors([("status", "en", "4821 3307 6634")]) == ["looks like a tracking code"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("status", "en", "STATUS"), ("lang", "en", "STATUE")),
        (("status", "fa", "وضعیت"), ("help", "fa", "وضعیتها")),
        (("stop", "en", "STOP"), ("exit", "en", "STOPP")),
    ],
)
def test_near_neighbours_of_different_commands_are_warned(
    first: tuple[str, str, str], second: tuple[str, str, str]
) -> None:
    problems = check_keywords([first, second])
    assert [p.severity for p in problems] == ["warning"]
    assert "close to" in problems[0].reason


def test_near_neighbours_within_one_command_are_fine() -> None:
    assert check_keywords([("lang", "en", "LANG"), ("lang", "en", "LANGS")]) == []


def test_config_yaml_keywords_have_no_errors() -> None:
    """Fails when two commands in config.yaml claim one keyword, or one takes a carrier's."""
    triples = load_city_config(CONFIG).keyword_triples()
    assert triples
    errors = [p for p in check_keywords(triples) if p.severity == "error"]
    assert errors == []


def test_conversation_words_of_config_have_no_errors() -> None:
    from gateway.settings import load_city_config
    from parsers.grammar import check_conversation_words

    config = load_city_config(Path(__file__).resolve().parents[2] / "config.yaml")
    problems = check_conversation_words(
        config.conversation_word_triples(), config.keyword_triples()
    )
    assert [p for p in problems if p.severity == "error"] == []


def test_a_form_word_that_is_an_always_acting_keyword_is_refused() -> None:
    from parsers.grammar import check_conversation_words

    problems = check_conversation_words(
        [("back", "fa", "انصراف"), ("skip", "en", "NEXT"), ("more", "en", "next")],
        [("exit", "fa", "انصراف"), ("stop", "en", "STOP")],
    )
    reasons = [p.reason for p in problems]
    assert any("always acts in a form" in r for r in reasons)
    assert any("also means 'skip'" in r for r in reasons)
