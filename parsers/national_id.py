"""The Iranian national ID (کد ملی): ten digits, the last a mod-11 check digit.

Eight- and nine-digit input is zero-padded on the left (leading zeros are often lost in
spreadsheets); codes of one repeated digit pass the checksum but belong to nobody and
are refused as suspicious.

>>> validate("۰۰۱۲۳۴۵۶۷۹")
'0012345679'
>>> format_id("12345679")
'001-234567-9'
>>> validate("0012345678")
Traceback (most recent call last):
    ...
parsers.errors.InvalidChecksum: The check digits do not match: most likely a typing mistake.
"""

from __future__ import annotations

import re

from parsers.errors import InvalidChecksum, InvalidFormat, InvalidLength, Suspicious
from parsers.normalize import fold_digits, strip_invisible

_SEPARATORS = re.compile(r"[\s\-_.\u2010-\u2015\u2212]+")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def compact(text: str) -> str:
    """Digits folded to ASCII, separators removed, 8–9 digits zero-padded to ten."""
    if not isinstance(text, str):
        return ""
    digits = _SEPARATORS.sub("", fold_digits(strip_invisible(text)))
    if _DIGITS.fullmatch(digits) and 8 <= len(digits) < 10:
        digits = digits.zfill(10)
    return digits


def check_digit(first_nine: str) -> int:
    """The mod-11 check digit of the first nine digits (weights 10 down to 2)."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(first_nine))
    remainder = total % 11
    return remainder if remainder < 2 else 11 - remainder


def validate(text: str) -> str:
    """The ten-digit ID, or `InvalidFormat`, `InvalidLength`, `InvalidChecksum`, `Suspicious`."""
    code = compact(text)
    if not _DIGITS.fullmatch(code):
        raise InvalidFormat()
    if len(code) != 10:
        raise InvalidLength()
    if check_digit(code[:9]) != int(code[9]):
        raise InvalidChecksum()
    if len(set(code)) == 1:
        raise Suspicious()
    return code


def is_valid(text: str) -> bool:
    """Whether `text` is a valid national ID.

    >>> is_valid("001-234567-9"), is_valid("1111111111")
    (True, False)
    """
    try:
        validate(text)
    except (InvalidFormat, InvalidLength, InvalidChecksum, Suspicious):
        return False
    return True


def format_id(text: str) -> str:
    """The conventional grouping ``XXX-XXXXXX-X``."""
    code = compact(text)
    return f"{code[:3]}-{code[3:9]}-{code[9:]}"
