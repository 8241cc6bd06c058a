"""Forms written in an email: `Label: value` lines.

A label is a field's label in either language or its key, compared after
normalisation (ZWNJ, letter forms, case, spacing); a value runs on over the following
lines until the next label. A `Service:` / `خدمت:` line names the service by number or
code. A blank line ends a value, so a closing line ("با سپاس") is not taken for part of
the last answer. Only the new part of a reply is read (see `parsers.quotes`).

>>> from types import SimpleNamespace as NS
>>> label = lambda fa, en: NS(get=lambda lang: fa if lang == "fa" else en)
>>> fields = [NS(key="postal_code", label=label("کد پستی ملک", "Postal code")),
...           NS(key="address", label=label("نشانی", "Address"))]
>>> parse_form("خدمت: ۶\\nکد پستی ملک: ۱۴۳۵۶۷۸۹۱۱\\nAddress: Vali-Asr St.\\nno. 12", fields)
FormText(service='۶', answers={'postal_code': '۱۴۳۵۶۷۸۹۱۱', 'address': 'Vali-Asr St.\\nno. 12'})
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from parsers.fields import Labelled
from parsers.normalize import normalize

SERVICE_LABELS = frozenset({"service", "خدمت", "شماره خدمت", "service number", "form", "فرم"})
_LABEL_LINE = re.compile(r"^\s*(?:[-*•]\s*)?(?:\d{1,2}[).\-]\s*)?([^:：\n]{1,60}?)\s*[:：]\s*(.*)$")


class FormField(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def label(self) -> Labelled: ...


@dataclass(frozen=True)
class FormText:
    service: str | None
    answers: dict[str, str] = field(default_factory=dict)


def _squeeze(text: str) -> str:
    return normalize(text).replace(" ", "").replace("_", "")


def label_index(fields: Sequence[FormField]) -> dict[str, str]:
    """Squeezed label (fa, en, key) -> field key."""
    index: dict[str, str] = {}
    for spec in fields:
        for name in (spec.key, spec.label.get("fa"), spec.label.get("en")):
            index.setdefault(_squeeze(name), spec.key)
    return index


def parse_form(text: str, fields: Sequence[FormField]) -> FormText:
    """The service named and the answers given, by field key; unknown labels are text."""
    if not isinstance(text, str):
        return FormText(None)
    labels = label_index(fields)
    services = {_squeeze(s) for s in SERVICE_LABELS}
    service: str | None = None
    answers: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = _LABEL_LINE.match(line)
        if match:
            name = _squeeze(match.group(1))
            if name in services:
                service = match.group(2).strip() or None
                current = None
                continue
            if name in labels:
                current = labels[name]
                answers[current] = [match.group(2).strip()]
                continue
        if not line.strip():
            current = None
        elif current is not None:
            answers[current].append(line.strip())
    joined = {key: "\n".join(v).strip() for key, v in answers.items()}
    return FormText(service, {k: v for k, v in joined.items()})


def service_labels(text: str) -> str | None:
    """Just the `Service:` value of a text, if it has one."""
    return parse_form(text, []).service
