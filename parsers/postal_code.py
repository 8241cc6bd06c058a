"""The Iranian postal code (کد پستی): ten digits.

Postal codes never start with 0 and are never one repeated digit; beyond that the post
office publishes no checksum, so nothing more is claimed.

>>> validate("۱۴۳۵۶-۷۸۹۱۱")
'1435678911'
>>> format_code("1435678911")
'14356-78911'
"""

from __future__ import annotations

import re

from parsers.errors import InvalidFormat, InvalidLength, Suspicious
from parsers.normalize import fold_digits, strip_invisible

_SEPARATORS = re.compile(r"[\s\-_.\u2010-\u2015\u2212]+")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def compact(text: str) -> str:
    if not isinstance(text, str):
        return ""
    return _SEPARATORS.sub("", fold_digits(strip_invisible(text)))


def validate(text: str) -> str:
    """The ten-digit code, or `InvalidFormat`, `InvalidLength` or `Suspicious`.

    >>> validate("0123456789")
    Traceback (most recent call last):
        ...
    parsers.errors.InvalidFormat: The text does not have the expected shape.
    """
    code = compact(text)
    if not _DIGITS.fullmatch(code):
        raise InvalidFormat()
    if len(code) != 10:
        raise InvalidLength()
    if code[0] == "0":
        raise InvalidFormat()
    if len(set(code)) == 1:
        raise Suspicious()
    return code


def is_valid(text: str) -> bool:
    try:
        validate(text)
    except (InvalidFormat, InvalidLength, Suspicious):
        return False
    return True


def format_code(text: str) -> str:
    code = compact(text)
    return f"{code[:5]}-{code[5:]}"
