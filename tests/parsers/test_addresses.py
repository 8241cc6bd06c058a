"""Channel addresses: one citizen, one phone number, however it was written.

A mobile typed on a Persian keyboard, copied with bidi marks, or sent by the carrier in
E.164 must land on the same contact; anything else is refused, never guessed at. Logs
only ever see masked addresses.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.addresses import mask, normalize_email, normalize_phone
from parsers.errors import InvalidFormat, ParseError

MOBILE = "+989121234567"


@pytest.mark.parametrize(
    "typed",
    [
        "09121234567",
        "9121234567",
        "+989121234567",
        "00989121234567",
        "989121234567",
        "0912 123 4567",
        "0912-123-4567",
        "(0912) 123 4567",
        "+98 912 123 4567",
        "  09121234567  ",
        "۰۹۱۲۱۲۳۴۵۶۷",
        "۰۹۱۲ ۱۲۳ ۴۵۶۷",
        "+۹۸۹۱۲۱۲۳۴۵۶۷",
        "٠٩١٢١٢٣٤٥٦٧",
        "۰۰۹۸ ۹۱۲ ۱۲۳ ۴۵۶۷",
        "۰۹۱۲\u200c۱۲۳\u200c۴۵۶۷",  # ZWNJ between groups
        "\u200e+989121234567\u200f",  # LRM/RLM around a pasted number
        "\u202a0912 123 4567\u202c",  # LRE … PDF
        "\u2066۰۹۱۲۱۲۳۴۵۶۷\u2069",  # LRI … PDI
        "\u061c09121234567",  # Arabic letter mark
    ],
)
def test_iranian_mobile_in_every_shape(typed: str) -> None:
    assert normalize_phone(typed) == MOBILE


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+14155550100", "+14155550100"),
        ("+1 415 555 0100", "+14155550100"),
        ("001 415 555 0100", "+14155550100"),
        ("+447911123456", "+447911123456"),
        ("+49 30 123456", "+4930123456"),
        ("+۹۷۱۵۰۱۲۳۴۵۶۷", "+971501234567"),
    ],
)
def test_foreign_number_stays_in_its_country(typed: str, expected: str) -> None:
    assert normalize_phone(typed) == expected


def test_region_decides_a_leading_zero() -> None:
    assert normalize_phone("020 7946 0018", region="GB") == "+442079460018"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "\u200c",
        "hello",
        "+",
        "+98",
        "0",
        "12",
        "۱۲۳",
        "😀",
        "abc@example.org",
        "0912123456789012345",
        "\x00",
        None,
    ],
)
def test_garbage_phone_is_invalid_format(typed: str) -> None:
    with pytest.raises(InvalidFormat) as caught:
        normalize_phone(typed)
    assert isinstance(caught.value, ParseError)
    assert caught.value.reply_key == "invalid_format"


@pytest.mark.parametrize(
    "typed",
    [
        "0912l234567",  # letter l for digit 1: gives '+980912234567'
        "0912abc4567",  # gives '+989122224567', a stranger's number
        "0912 123 456a",  # gives '+980912123456'
    ],
)
def test_letters_in_a_phone_number_are_refused(typed: str) -> None:
    with pytest.raises(InvalidFormat):
        normalize_phone(typed)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("citizen@example.org", "citizen@example.org"),
        (" Citizen@Example.ORG ", "citizen@example.org"),
        ("\tALI.REZAEI@MAIL.EXAMPLE.IR\n", "ali.rezaei@mail.example.ir"),
        ("\u200eali@example.org\u200f", "ali@example.org"),
        ("\u00a0ali@example.org\u00a0", "ali@example.org"),
        ("ali+case@example.org", "ali+case@example.org"),
    ],
)
def test_email_trimmed_and_lower_cased(typed: str, expected: str) -> None:
    assert normalize_email(typed) == expected


@pytest.mark.parametrize(
    "typed",
    ["", "   ", None, "no-at-sign", "@example.org", "ali@", "ali@localhost", "ali @example.org"],
)
def test_garbage_email_is_invalid_format(typed: str) -> None:
    with pytest.raises(InvalidFormat):
        normalize_email(typed)


@pytest.mark.parametrize(
    "typed",
    ["ali@.", "ali@example.", "ali@.org", "a@b@example.org", "<ali@example.org>"],
)
def test_malformed_email_is_refused(typed: str) -> None:
    with pytest.raises(InvalidFormat):
        normalize_email(typed)


# mask ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("+989121234567", "+98912*****67"),
        ("+14155550100", "+14155****00"),
        ("ali.rezaei@example.org", "al***@example.org"),
        ("short", "***"),
    ],
)
def test_mask(address: str, expected: str) -> None:
    assert mask(address) == expected


IRANIAN_MOBILES = st.integers(min_value=0, max_value=10**9 - 1).map(lambda n: f"+989{n:09d}")
E164 = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)


@given(st.one_of(IRANIAN_MOBILES, E164))
def test_masked_phone_never_holds_the_number(number: str) -> None:
    masked = mask(number)
    assert number not in masked
    assert number[-7:] not in masked  # not even the subscriber part


LOCAL_PARTS = st.from_regex(r"[a-z0-9][a-z0-9._+-]{2,30}", fullmatch=True)


@given(LOCAL_PARTS, st.sampled_from(["example.org", "mail.example.ir"]))
def test_masked_email_never_holds_the_local_part(local: str, domain: str) -> None:
    masked = mask(f"{local}@{domain}")
    assert f"{local}@{domain}" not in masked
    assert local not in masked


@pytest.mark.parametrize("address", ["a@example.org", "ab@example.org"])
def test_masked_short_email_never_holds_the_local_part(address: str) -> None:
    local = address.split("@")[0]
    shown = mask(address).split("@")[0].replace("*", "")
    assert shown != local
