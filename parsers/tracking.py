"""Case tracking codes: twelve digits, ten random and two ISO 7064 MOD 97-10 check digits.

Twelve digits can be taken neither for a 10-digit national ID or postal code nor for an
11-digit mobile number. Citizens may type them with spaces or dashes and in Persian or
Arabic-Indic digits; a code whose check digits are wrong is a typing mistake, told apart
from a well-formed code that does not exist.

>>> validate("۴۸۲۱ ۳۳۰۷ ۶۶۳۴")
'482133076634'
>>> format_code("482133076634")
'4821 3307 6634'
>>> validate("4821 3307 6635")
Traceback (most recent call last):
    ...
parsers.errors.InvalidChecksum: The check digits do not match: most likely a typing mistake.
"""

from __future__ import annotations

import re
import secrets

from stdnum.iso7064 import mod_97_10

from parsers.errors import InvalidChecksum, InvalidFormat, InvalidLength
from parsers.normalize import fold_digits, strip_invisible

LENGTH = 12
_SEPARATORS = re.compile(r"[\s\-_./\u2010-\u2015\u2212]+")
_ALL_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def compact(text: str) -> str:
    """Digits folded to ASCII, separators and invisible marks removed.

    >>> compact("٤٨٢١-٣٣٠٧-٦٦٣٤")
    '482133076634'
    """
    if not isinstance(text, str):
        return ""
    return _SEPARATORS.sub("", fold_digits(strip_invisible(text))).strip()


def validate(text: str) -> str:
    """The compact code, or `InvalidFormat`, `InvalidLength` or `InvalidChecksum`.

    >>> validate("12345")
    Traceback (most recent call last):
        ...
    parsers.errors.InvalidLength: The text has the wrong number of characters or digits.
    """
    code = compact(text)
    if not _ALL_DIGITS.fullmatch(code):
        raise InvalidFormat()
    if len(code) != LENGTH:
        raise InvalidLength()
    if not mod_97_10.is_valid(code):
        raise InvalidChecksum()
    return code


def is_valid(text: str) -> bool:
    """Whether `text` is a well-formed tracking code with correct check digits.

    >>> is_valid("4821 3307 6634"), is_valid("4821 3307 6643")
    (True, False)
    """
    try:
        validate(text)
    except (InvalidFormat, InvalidLength, InvalidChecksum):
        return False
    return True


def format_code(code: str) -> str:
    """Grouped by four for reading aloud and typing: ``4821 3307 6634``."""
    code = compact(code)
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def looks_like_code(text: str) -> bool:
    """Whether a token run is meant as a tracking code (12 digits, right or wrong).

    >>> looks_like_code("4821 3307 6635"), looks_like_code("1234")
    (True, False)
    """
    code = compact(text)
    return bool(_ALL_DIGITS.fullmatch(code)) and len(code) == LENGTH


def generate() -> str:
    """A fresh random code: a non-zero first digit, nine more, two check digits."""
    body = str(secrets.randbelow(9) + 1) + "".join(
        str(secrets.randbelow(10)) for _ in range(LENGTH - 3)
    )
    return body + mod_97_10.calc_check_digits(body)
