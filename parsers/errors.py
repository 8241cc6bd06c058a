"""The one family of parser errors; each carries the key of the reply a citizen gets."""

from __future__ import annotations


class ParseError(ValueError):
    """Input a citizen typed that cannot be used; `reply_key` names the reply text."""

    reply_key = "invalid_input"

    def __init__(self, message: str = "", **values: object) -> None:
        super().__init__(message or self.__class__.__doc__ or self.reply_key)
        self.values = values


class InvalidFormat(ParseError):
    """The text does not have the expected shape."""

    reply_key = "invalid_format"


class InvalidLength(ParseError):
    """The text has the wrong number of characters or digits."""

    reply_key = "invalid_length"


class InvalidChecksum(ParseError):
    """The check digits do not match: most likely a typing mistake."""

    reply_key = "invalid_checksum"


class Suspicious(ParseError):
    """Well-formed but implausible (a placeholder such as one digit repeated)."""

    reply_key = "suspicious"


class OutOfRange(ParseError):
    """A value outside the allowed range."""

    reply_key = "out_of_range"


class Required(ParseError):
    """A required answer is missing."""

    reply_key = "required"
