"""SMS segment budgets: GSM-7 or UCS-2, single or multi-part.

A Persian (UCS-2) segment holds 70 characters, 67 in a multi-part message; GSM-7 holds
160, 153 in a multi-part message (extension characters count twice).

>>> segments("Hello")
1
>>> segments("س" * 70), segments("س" * 71)
(1, 2)
"""

from __future__ import annotations

import math

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    """Whether every character fits the GSM 03.38 alphabet."""
    if not isinstance(text, str):
        return True
    return all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text)


def units(text: str) -> int:
    """Length in the encoding's units: septets for GSM-7, UTF-16 code units for UCS-2."""
    if not isinstance(text, str):
        return 0
    if is_gsm7(text):
        return sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


def segments(text: str) -> int:
    """How many SMS segments `text` takes."""
    n = units(text)
    single, multi = (160, 153) if is_gsm7(text) else (70, 67)
    if n <= single:
        return 1
    return math.ceil(n / multi)


def budget(max_segments: int, text: str = "") -> int:
    """Characters available in `max_segments` for text of this kind."""
    gsm = is_gsm7(text) if text else False
    single, multi = (160, 153) if gsm else (70, 67)
    return single if max_segments == 1 else multi * max_segments
