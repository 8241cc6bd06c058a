"""Mobile numbers, read with `phonenumbers`: Iranian ``09…`` becomes ``+989…``.

>>> validate("۰۹۱۲ ۱۲۳ ۴۵۶۷")
'+989121234567'
>>> format_number("+989121234567")
'0912 123 4567'
>>> is_valid("02188776655")
False
"""

from __future__ import annotations

import phonenumbers

from parsers.addresses import normalize_phone
from parsers.errors import InvalidFormat

_MOBILE = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def validate(text: str, region: str = "IR") -> str:
    """E.164 of a valid mobile number, or `InvalidFormat` (landlines included)."""
    e164 = normalize_phone(text, region)
    number = phonenumbers.parse(e164)
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in _MOBILE:
        raise InvalidFormat("not a mobile number")
    return e164


def is_valid(text: str, region: str = "IR") -> bool:
    try:
        validate(text, region)
    except InvalidFormat:
        return False
    return True


def format_number(e164: str) -> str:
    """National format for Iranian numbers, international otherwise."""
    number = phonenumbers.parse(e164)
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 98
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)
