"""Text normalisation before any matching.

The steps DESIGN.md names, each a function of its own so tests can pin it down:
Unicode NFKC; Persian (۰–۹) and Arabic-Indic (٠–٩) digits to ASCII; Arabic yeh and
kaf to their Persian forms; ZWNJ, tatweel, bidi marks and diacritics dropped; case
folded; surrounding punctuation trimmed from each token.

>>> normalize("  وضعيت ۴۸۲۱-۳۳۰۷ ")
'وضعیت 4821-3307'
>>> normalize("STATUS\u200c!")
'status'
"""

from __future__ import annotations

import re
import unicodedata

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_LETTERS = str.maketrans(
    {
        "ي": "ی",  # ARABIC LETTER YEH -> FARSI YEH
        "ى": "ی",  # ALEF MAKSURA
        "ك": "ک",  # ARABIC LETTER KAF -> KEHEH
        "ۀ": "ه",  # HEH WITH YEH ABOVE
        "ة": "ه",  # TEH MARBUTA
        "أ": "ا",
        "إ": "ا",
        "ٱ": "ا",
        "ؤ": "و",
    }
)
# Zero-width and bidi format characters, tatweel, BOM.
_INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2069\u0640\ufeff\u061c\u00ad]",
)


def _combining_class() -> re.Pattern[str]:
    """Every combining mark (canonical combining class > 0) as one character class."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x300, 0x20000):
        if unicodedata.combining(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    parts = (re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges)
    return re.compile("[" + "".join(parts) + "]")


_COMBINING = _combining_class()
# Punctuation trimmed from each token's ends (keeps + and - inside a token).
_EDGE_PUNCT = "!?.,;:،؛؟«»\"'()[]{}<>*~`_…٫٬"


def fold_digits(text: str) -> str:
    """Persian and Arabic-Indic digits to ASCII, nothing else.

    >>> fold_digits("۱۲۳ ٤٥٦ 789")
    '123 456 789'
    """
    return text.translate(_DIGITS)


def fold_letters(text: str) -> str:
    """Arabic letter forms to the Persian ones a Persian keyboard types.

    >>> fold_letters("كيك") == "کیک"
    True
    """
    return text.translate(_LETTERS)


def strip_invisible(text: str) -> str:
    """Drop ZWNJ and the other zero-width, bidi and tatweel characters.

    >>> strip_invisible("می\u200cخواهم") == "میخواهم"
    True
    """
    return _INVISIBLE.sub("", text)


def strip_diacritics(text: str) -> str:
    """Drop combining marks (Arabic harakat, Latin accents).

    >>> strip_diacritics("سَلام") == "سلام"
    True
    """
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _COMBINING.sub("", decomposed))


def normalize(text: str) -> str:
    """The full normalisation used before matching keywords and arguments.

    Idempotent: ``normalize(normalize(x)) == normalize(x)``.

    >>> normalize("Help?")
    'help'
    >>> normalize("زبان\u200c EN")
    'زبان en'
    """
    if not isinstance(text, str):
        return ""
    if text.isascii():  # every other step leaves ASCII as it is
        return " ".join(filter(None, [t.strip(_EDGE_PUNCT) for t in text.lower().split()]))
    out = unicodedata.normalize("NFKC", text)
    out = fold_digits(out)
    out = fold_letters(out)
    out = strip_invisible(out)
    out = strip_diacritics(out)
    out = out.casefold()
    out = unicodedata.normalize("NFKC", out)
    out = fold_digits(fold_letters(strip_invisible(out)))
    # str.split() splits on the characters \s matches (str.isspace)
    return " ".join(filter(None, [t.strip(_EDGE_PUNCT) for t in out.split()]))


def tokens(text: str) -> list[str]:
    """The normalised text split into whitespace-separated tokens.

    >>> tokens(" STATUS  ۴۸۲۱ ۳۳۰۷ ")
    ['status', '4821', '3307']
    """
    normal = normalize(text)
    return normal.split(" ") if normal else []
