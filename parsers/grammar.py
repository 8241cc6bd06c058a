"""The command grammar: a keyword, then arguments.

Keywords match whole tokens after normalisation: exactly first, then by alias (a
keyword glued to the digits that follow it, "STATUS482133076634"), then by fuzzy
distance, which only ever yields a suggestion, never a command. A message that is
nothing but a tracking code is read as a status request.

>>> table = KeywordTable.build([("status", "en", "STATUS"), ("status", "fa", "وضعیت")])
>>> parse("Status 4821 3307 6634", table).command
'status'
>>> parse("وضعيت۴۸۲۱۳۳۰۷۶۶۳۴", table).args
('482133076634',)
>>> cmd = parse("statsu 1", table)
>>> cmd.command is None, cmd.suggestion
(True, 'STATUS')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from rapidfuzz import fuzz, process

from parsers import tracking
from parsers.normalize import normalize, tokens

# Words the carriers act on themselves, with what the carrier does: Twilio's
# opt-out, opt-in and help words, and Iran's "لغو" / 11 (stop) and 12 (start again).
RESERVED: dict[str, str] = {
    **dict.fromkeys(
        ["stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"],
        "stop",
    ),
    **dict.fromkeys(["start", "yes", "unstop"], "start"),
    **dict.fromkeys(["help", "info"], "help"),
    "لغو": "stop",
    "لغو 11": "stop",
    "11": "stop",
    "12": "start",
}
FUZZY_MIN_SCORE = 75.0
FUZZY_MIN_LENGTH = 3
_GLUED = re.compile(r"^(\D+?)(\d[\d\-]*)$", re.ASCII)
_DIGIT_GROUP = re.compile(r"[\d\-]+", re.ASCII)


@dataclass(frozen=True)
class KeywordEntry:
    command: str
    language: str
    keyword: str  # as configured, for display
    normal: str  # as matched


@dataclass(frozen=True)
class KeywordTable:
    """Normalised keyword -> entry; built once per keyword set, read by every message."""

    entries: dict[str, KeywordEntry] = field(default_factory=dict)

    @classmethod
    def build(cls, items: Iterable[tuple[str, str, str]]) -> KeywordTable:
        """From (command, language, keyword) triples; the first claim of a word wins."""
        entries: dict[str, KeywordEntry] = {}
        for command, language, keyword in items:
            normal = normalize(keyword)
            if normal and normal not in entries:
                entries[normal] = KeywordEntry(command, language, keyword, normal)
        return cls(entries)

    def keywords_for(self, command: str, language: str) -> list[str]:
        """The keywords of `command` in `language`, in the table's order."""
        return list(self._by_command.get((command, language), ()))

    @cached_property
    def _by_command(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(command, language) -> keywords; built at the first hint (HELP names five)."""
        found: dict[tuple[str, str], list[str]] = {}
        for e in self.entries.values():
            found.setdefault((e.command, e.language), []).append(e.keyword)
        return {key: tuple(words) for key, words in found.items()}

    def suggest(self, word: str) -> KeywordEntry | None:
        """The keyword closest to `word`, if close enough to be a likely typo."""
        if len(word) < FUZZY_MIN_LENGTH or not self.entries:
            return None
        best = process.extractOne(
            word, self.entries.keys(), scorer=fuzz.ratio, score_cutoff=FUZZY_MIN_SCORE
        )
        return self.entries[best[0]] if best else None


@dataclass(frozen=True)
class ParsedCommand:
    """What a message asks for; `command` is None when no keyword matched."""

    text: str
    command: str | None = None
    language: str | None = None
    keyword: str | None = None
    args: tuple[str, ...] = ()
    suggestion: str | None = None
    suggestion_command: str | None = None
    matched_by: str = "none"  # exact, alias, code, none


def _join_code(args: list[str]) -> list[str]:
    """A code typed in groups ("4821 3307 6634", "4821-3307-6634") becomes one argument.

    Linear in the number of words: only runs of digit groups are looked at, and a run
    stops growing once it holds twelve digits.
    """
    digit_group = _DIGIT_GROUP
    for start, word in enumerate(args):
        if not digit_group.fullmatch(word):
            continue
        joined = ""
        for end in range(start, len(args)):
            if not digit_group.fullmatch(args[end]):
                break
            joined += args[end].replace("-", "")
            if len(joined) > tracking.LENGTH:
                break
            if len(joined) == tracking.LENGTH:
                return [*args[:start], joined, *args[end + 1 :]]
    return args


def parse(text: str, table: KeywordTable) -> ParsedCommand:
    """Read a citizen's message against the keyword table. Never raises."""
    if not isinstance(text, str):
        text = ""
    words = tokens(text.replace(":", " "))
    if not words:
        return ParsedCommand(text=text)
    # Exact: the longest keyword (up to three words) at the start of the message.
    for width in (3, 2, 1):
        head = " ".join(words[:width])
        if len(words) >= width and head in table.entries:
            entry = table.entries[head]
            return ParsedCommand(
                text=text,
                command=entry.command,
                language=entry.language,
                keyword=entry.keyword,
                args=tuple(_join_code(words[width:])),
                matched_by="exact",
            )
    # Alias: a keyword glued to the number after it.
    glued = _GLUED.match(words[0])
    if glued and glued.group(1) in table.entries:
        entry = table.entries[glued.group(1)]
        return ParsedCommand(
            text=text,
            command=entry.command,
            language=entry.language,
            keyword=entry.keyword,
            args=tuple(_join_code([glued.group(2).replace("-", ""), *words[1:]])),
            matched_by="alias",
        )
    # A bare tracking code, optionally followed by a PIN, asks for its status.
    if _DIGIT_GROUP.fullmatch(words[0]):  # a code starts with digits
        joined = _join_code(words)
        if tracking.looks_like_code(joined[0]) and len(joined) <= 2:
            return ParsedCommand(text=text, command="status", args=tuple(joined), matched_by="code")
    # Fuzzy: suggest only.
    near = table.suggest(words[0])
    if near is not None:
        return ParsedCommand(text=text, suggestion=near.keyword, suggestion_command=near.command)
    return ParsedCommand(text=text)


@dataclass(frozen=True)
class KeywordProblem:
    """One problem in a keyword table, with the reason an operator reads."""

    keyword: str
    command: str
    language: str
    severity: str  # "error" refuses the keyword, "warning" flags it
    reason: str


def check_keywords(items: Iterable[tuple[str, str, str]]) -> list[KeywordProblem]:
    """Conflicts and risks in (command, language, keyword) triples.

    >>> [p.reason for p in check_keywords([("help", "en", "HELP"), ("status", "en", "help")])]
    ["'help' is already a keyword of command 'help'", "'help' is a carrier word meaning 'help'"]
    """
    problems: list[KeywordProblem] = []
    seen: dict[str, tuple[str, str]] = {}
    listed = list(items)
    for command, language, keyword in listed:
        normal = normalize(keyword)
        if not normal:
            problems.append(
                KeywordProblem(keyword, command, language, "error", "empty after normalisation")
            )
            continue
        if normal in seen and seen[normal][0] != command:
            problems.append(
                KeywordProblem(
                    keyword,
                    command,
                    language,
                    "error",
                    f"'{normal}' is already a keyword of command '{seen[normal][0]}'",
                )
            )
        seen.setdefault(normal, (command, language))
        meaning = RESERVED.get(normal)
        if meaning is not None and meaning != command:
            problems.append(
                KeywordProblem(
                    keyword,
                    command,
                    language,
                    "error",
                    f"'{normal}' is a carrier word meaning '{meaning}'",
                )
            )
        if tracking.looks_like_code(normal):
            problems.append(
                KeywordProblem(keyword, command, language, "error", "looks like a tracking code")
            )
    for i, (command, language, keyword) in enumerate(listed):
        normal = normalize(keyword)
        for other_command, _other_lang, other in listed[i + 1 :]:
            other_normal = normalize(other)
            if other_command == command or not normal or normal == other_normal:
                continue
            if min(len(normal), len(other_normal)) < FUZZY_MIN_LENGTH:
                continue
            if normal in RESERVED and other_normal in RESERVED:
                continue  # both fixed by the carriers: nothing an operator can change
            if fuzz.ratio(normal, other_normal) >= FUZZY_MIN_SCORE:
                problems.append(
                    KeywordProblem(
                        keyword,
                        command,
                        language,
                        "warning",
                        f"'{normal}' is close to '{other_normal}' of command "
                        f"'{other_command}': a typo could suggest the wrong one",
                    )
                )
    return problems


def check_conversation_words(
    words: Iterable[tuple[str, str, str]],
    keywords: Iterable[tuple[str, str, str]],
    always_act: Iterable[str] = ("help", "stop", "exit"),
) -> list[KeywordProblem]:
    """Problems with the words used inside a form (more, back, confirm, edit, skip).

    A word that is also a keyword of a command that always acts in a form (STOP, HELP,
    EXIT) would never reach the form; one word for two kinds is ambiguous.

    >>> [p.reason for p in check_conversation_words([("back", "en", "EXIT")],
    ...                                             [("exit", "en", "EXIT")])]
    ["'exit' is a keyword of 'exit', which always acts in a form"]
    """
    acting = set(always_act)
    owners = {normalize(k): c for c, _lang, k in keywords if c in acting}
    problems: list[KeywordProblem] = []
    seen: dict[str, str] = {}
    for kind, language, word in words:
        normal = normalize(word)
        if not normal:
            problems.append(
                KeywordProblem(word, kind, language, "error", "empty after normalisation")
            )
            continue
        if normal in owners:
            problems.append(
                KeywordProblem(
                    word,
                    kind,
                    language,
                    "error",
                    f"'{normal}' is a keyword of '{owners[normal]}', which always acts in a form",
                )
            )
        if normal in seen and seen[normal] != kind:
            problems.append(
                KeywordProblem(
                    word, kind, language, "error", f"'{normal}' also means '{seen[normal]}'"
                )
            )
        seen.setdefault(normal, kind)
    return problems


def check_new_keyword(
    existing: Iterable[tuple[str, str, str]],
    candidate: tuple[str, str, str],
    form_words: Iterable[tuple[str, str, str]] = (),
    always_act: Iterable[str] = ("help", "stop", "exit"),
) -> list[str]:
    """Why `candidate` (command, language, keyword) may not join the table; [] if it may.

    Refused: an empty word, a tracking code, a word another command has (after
    normalisation), a carrier word of another meaning, a near neighbour of another
    command's keyword (the fuzzy suggestion would confuse them), and, for a command that
    always acts inside a form, a word forms use.

    >>> check_new_keyword([("status", "en", "STATUS")], ("help", "en", "STATSU"))
    ["'statsu' is close to 'status' of command 'status': a typo could suggest the wrong one"]
    >>> check_new_keyword([("status", "en", "STATUS")], ("status", "fa", "استعلام"))
    []
    """
    command, _language, keyword = candidate
    normal = normalize(keyword)
    if not normal:
        return ["empty after normalisation"]
    reasons: list[str] = []
    if tracking.looks_like_code(normal) or (
        normal.replace(" ", "").isdigit() and (normal not in RESERVED)
    ):
        reasons.append("a number could be taken for a code or an answer")
    meaning = RESERVED.get(normal)
    if meaning is not None and meaning != command:
        reasons.append(f"'{normal}' is a carrier word meaning '{meaning}'")
    for other_command, _other_language, other in existing:
        other_normal = normalize(other)
        if other_normal == normal:
            if other_command == command:
                reasons.append(f"'{normal}' is already a keyword of command '{command}'")
            else:
                reasons.append(f"'{normal}' is already a keyword of command '{other_command}'")
        elif (
            other_command != command
            and min(len(normal), len(other_normal)) >= FUZZY_MIN_LENGTH
            and not (normal in RESERVED and other_normal in RESERVED)
            and fuzz.ratio(normal, other_normal) >= FUZZY_MIN_SCORE
        ):
            reasons.append(
                f"'{normal}' is close to '{other_normal}' of command '{other_command}': "
                "a typo could suggest the wrong one"
            )
    if command in set(always_act):
        for kind, _lang, word in form_words:
            if normalize(word) == normal:
                reasons.append(f"'{normal}' is the form word '{kind}', which {command} would hide")
    return list(dict.fromkeys(reasons))
