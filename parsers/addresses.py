"""Channel addresses: phone numbers to E.164, email addresses lower-cased.

>>> normalize_phone("09121234567")
'+989121234567'
>>> normalize_phone("۰۹۱۲ ۱۲۳ ۴۵۶۷")
'+989121234567'
>>> normalize_phone("+1 415 555 0100")
'+14155550100'
>>> normalize_email(" Citizen@Example.ORG ")
'citizen@example.org'
>>> mask("+989121234567"), mask("ali.rezaei@example.org")
('+98912*****67', 'al***@example.org')
"""

from __future__ import annotations

import re

import phonenumbers

from parsers.errors import InvalidFormat
from parsers.normalize import fold_digits, strip_invisible

_PHONE_CHARS = re.compile(r"\+?[0-9(][0-9 ()./\-]{3,24}", re.ASCII)
_EMAIL = re.compile(r"[^@\s<>()\[\],;:\"]+@[^\W_](?:[\w\-]*[^\W_])?(?:\.[^\W_](?:[\w\-]*[^\W_])?)+")


def normalize_phone(text: str, region: str = "IR") -> str:
    """E.164 form of a phone number, or `InvalidFormat`; a leading 0 reads as `region`."""
    cleaned = fold_digits(strip_invisible(text if isinstance(text, str) else "")).strip()
    if not _PHONE_CHARS.fullmatch(cleaned):
        raise InvalidFormat("not a phone number")
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    try:
        number = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException:
        raise InvalidFormat("not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidFormat("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(text: str) -> str:
    """An email address trimmed and lower-cased, or `InvalidFormat`."""
    address = strip_invisible(text if isinstance(text, str) else "").strip().lower()
    if len(address) > 320 or not _EMAIL.fullmatch(address):
        raise InvalidFormat("not an email address")
    return address


def mask(address: str) -> str:
    """An address shortened for logs: never a full phone number or email address."""
    if not isinstance(address, str):
        return "***"
    if "@" in address:
        local, _, domain = address.rpartition("@")
        keep = 2 if len(local) > 4 else 1 if len(local) > 2 else 0
        return f"{local[:keep]}***@{domain}"
    if len(address) <= 8:
        return "***"
    return f"{address[:6]}{'*' * (len(address) - 8)}{address[-2:]}"
