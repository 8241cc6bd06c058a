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

import phonenumbers

from parsers.errors import InvalidFormat
from parsers.normalize import fold_digits, strip_invisible


def normalize_phone(text: str, region: str = "IR") -> str:
    """E.164 form of a phone number, or `InvalidFormat`; a leading 0 reads as `region`."""
    cleaned = fold_digits(strip_invisible(text or "")).strip()
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
    address = strip_invisible(text or "").strip().lower()
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain or " " in address:
        raise InvalidFormat("not an email address")
    return address


def mask(address: str) -> str:
    """An address shortened for logs: never a full phone number or email address."""
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:2]}***@{domain}"
    if len(address) <= 8:
        return "***"
    return f"{address[:6]}{'*' * (len(address) - 8)}{address[-2:]}"
