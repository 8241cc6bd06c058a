"""Typed form fields: one answer checked against its field, and a whole form at once.

The same rules serve every channel: the SMS conversation checks one answer at a time
with `validate_answer`; the end of a conversation, an email form and the operator API
check a whole set with `check_form`, which returns the clean values or the list of
missing and invalid fields, each with the key of the text that says what is expected.

The catalogue is described by Protocols, so this module needs no settings class:

>>> from types import SimpleNamespace as NS
>>> area = NS(key="area", type="number", required=True, min=1, max=500, max_length=None,
...           options=None, label=None, help=None)
>>> validate_answer(area, "۱۲۰٫۵ متر", districts=[1])
120.5
>>> check_form([area], {"area": "9000"}, districts=[1]).problems
[FieldProblem(key='area', reply_key='field_number', values={'min': '1', 'max': '500'})]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from parsers import dates, mobile, national_id, postal_code
from parsers.display import localize_digits
from parsers.errors import (
    InvalidChecksum,
    InvalidFormat,
    OutOfRange,
    ParseError,
    Suspicious,
)
from parsers.normalize import fold_digits, normalize, strip_invisible

Value = str | int | float | bool | None


class Labelled(Protocol):
    def get(self, language: str) -> str: ...


class OptionSpec(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def label(self) -> Labelled: ...


class FieldSpec(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def required(self) -> bool: ...

    @property
    def min(self) -> float | None: ...

    @property
    def max(self) -> float | None: ...

    @property
    def max_length(self) -> int | None: ...

    @property
    def options(self) -> Sequence[OptionSpec] | None: ...

    @property
    def label(self) -> Labelled: ...

    @property
    def help(self) -> Labelled | None: ...


YES_WORDS = frozenset(
    normalize(w) for w in ("yes", "y", "ok", "بله", "بلی", "آره", "اره", "بلە", "ب", "دارد", "هست")
)
NO_WORDS = frozenset(normalize(w) for w in ("no", "n", "نه", "خیر", "نخیر", "ن", "ندارد", "نیست"))
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?", re.ASCII)
_DISTRICT = re.compile(r"(\d{1,3})", re.ASCII)
DEFAULT_TEXT_LIMIT = 500
# Free text keeps its ZWNJ (part of Persian spelling) but loses bidi controls and NULs.
_BIDI_AND_NUL = re.compile("[\x00\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff]")


@dataclass(frozen=True)
class FieldProblem:
    key: str
    reply_key: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FormCheck:
    values: dict[str, Value]
    problems: list[FieldProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


class FieldError(ParseError):
    """An answer that does not fit its field; `reply_key` names the text saying what fits."""

    def __init__(self, reply_key: str, **values: object) -> None:
        super().__init__(reply_key, **values)
        self.reply_key = reply_key


def _number(text: str) -> float:
    cleaned = fold_digits(strip_invisible(text)).replace("٫", ".").replace("/", ".")
    cleaned = re.sub(r"(?<=\d)[,٬،](?=\d{3})", "", cleaned)
    match = _NUMBER.search(cleaned)
    if match is None or len(match.group()) > 18:
        raise InvalidFormat()
    return float(match.group())


def _bounds(spec: FieldSpec) -> dict[str, str]:
    def show(x: float | None) -> str:
        if x is None:
            return ""
        return str(int(x)) if float(x).is_integer() else str(x)

    return {"min": show(spec.min), "max": show(spec.max)}


def _choice(spec: FieldSpec, text: str) -> str:
    options = list(spec.options or [])
    normal = normalize(text)
    digits = fold_digits(normal)
    if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= len(options):
        return options[int(digits) - 1].key
    squeezed = normal.replace(" ", "")
    for option in options:
        names = {normalize(option.label.get(lang)).replace(" ", "") for lang in ("fa", "en")}
        if squeezed in names or normal == option.key:
            return option.key
    raise InvalidFormat()


def _yes_no(text: str) -> bool:
    normal = normalize(text)
    if normal in YES_WORDS:
        return True
    if normal in NO_WORDS:
        return False
    raise InvalidFormat()


def _district(text: str, districts: Collection[int]) -> int:
    match = _DISTRICT.search(fold_digits(normalize(text)))
    if match is None:
        raise InvalidFormat()
    number = int(match.group(1))
    if number not in districts:
        raise OutOfRange()
    return number


def validate_answer(
    spec: FieldSpec, text: str, *, districts: Collection[int], region: str = "IR"
) -> Value:
    """The clean value of one answer, or `FieldError` with the reply key to send."""
    text = text if isinstance(text, str) else ""
    if not strip_invisible(text).strip():
        raise FieldError("field_required")
    kind = spec.type
    try:
        if kind == "national_id":
            return national_id.validate(text)
        if kind == "postal_code":
            return postal_code.validate(text)
        if kind == "mobile":
            return mobile.validate(text, region)
        if kind == "date":
            return dates.validate(text).isoformat()
        if kind == "choice":
            return _choice(spec, text)
        if kind == "yes_no":
            return _yes_no(text)
        if kind == "district":
            return _district(text, districts)
        if kind == "number":
            number = _number(text)
            if (spec.min is not None and number < spec.min) or (
                spec.max is not None and number > spec.max
            ):
                raise OutOfRange()
            return int(number) if number.is_integer() else number
        value = " ".join(_BIDI_AND_NUL.sub("", text).split())
        limit = spec.max_length or DEFAULT_TEXT_LIMIT
        if len(value) > limit:
            raise FieldError("field_text", max=str(limit))
        return value
    except InvalidChecksum:
        raise FieldError(f"field_{kind}_checksum") from None
    except Suspicious:
        raise FieldError(f"field_{kind}_suspicious") from None
    except FieldError:
        raise
    except ParseError:
        values = _bounds(spec) if kind == "number" else {}
        raise FieldError(f"field_{kind}", **values) from None


def check_form(
    fields: Sequence[FieldSpec],
    answers: Mapping[str, str | None],
    *,
    districts: Collection[int],
    region: str = "IR",
) -> FormCheck:
    """Every field's answer checked: clean values, or what is missing and what is wrong."""
    values: dict[str, Value] = {}
    problems: list[FieldProblem] = []
    for spec in fields:
        raw = answers.get(spec.key)
        if raw is None or not strip_invisible(str(raw)).strip():
            if spec.required:
                problems.append(FieldProblem(spec.key, "field_required"))
            else:
                values[spec.key] = None
            continue
        try:
            values[spec.key] = validate_answer(spec, str(raw), districts=districts, region=region)
        except FieldError as exc:
            shown = {k: str(v) for k, v in exc.values.items()}
            problems.append(FieldProblem(spec.key, exc.reply_key, shown))
    return FormCheck(values, problems)


def display_value(
    spec: FieldSpec,
    value: Value,
    language: str,
    district_name: Callable[[int], str] | None = None,
) -> str:
    """A stored value as a citizen reads it, in `language`."""
    if value is None:
        return "—"
    kind = spec.type
    if kind == "choice":
        for option in spec.options or []:
            if option.key == value:
                return option.label.get(language)
    if kind == "yes_no":
        return ("بله" if value else "خیر") if language == "fa" else ("yes" if value else "no")
    if kind == "date" and isinstance(value, str):
        return dates.format_day(date.fromisoformat(value), language)
    if kind == "district" and isinstance(value, int) and district_name is not None:
        return district_name(value)
    if kind == "mobile" and isinstance(value, str):
        return localize_digits(mobile.format_number(value), language)
    if kind == "national_id" and isinstance(value, str):
        return localize_digits(national_id.format_id(value), language)
    return localize_digits(str(value), language) if kind != "text" else str(value)
