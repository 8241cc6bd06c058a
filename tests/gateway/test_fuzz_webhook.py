"""A property-based sweep of the Twilio webhook: any form Twilio (or anyone) might post.

`hypothesis` builds inbound webhooks (any Unicode in the body: NUL, control characters,
RTL marks, ZWNJ, Persian and Arabic-Indic digits, emoji, very long texts, bodies past the
size limit, lone surrogates sent as their raw UTF-8 bytes; missing, repeated and odd
`From`, `Body`, `MessageSid`; forged, stale and missing signatures; other content types)
and posts them to the real app on SQLite and PostgreSQL. For each one:

- the status is never a 5xx, and is exactly what the contract says: 415 for another
  content type, 413 past the size limit, 400 for bytes that are not UTF-8 or for a
  missing or invalid `MessageSid`/`From`/`To`, 403 for a bad signature, 200 otherwise;
- a refused request stores nothing;
- a 200 is TwiML that parses as XML, each <Message> within the SMS budget
  (`handlers.base.MAX_SEGMENTS` segments), and its MessageSid has exactly one inbound
  row, handled, with no handler error recorded on it (a crash answered politely is
  still a crash);
- a second delivery of the same MessageSid gets the same TwiML and stores nothing new.

`tests/gateway/test_twilio_webhook.py` holds the hand-written cases this generalises.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.twilio_sms import FORM_TYPE, MAX_FORM_BYTES
from handlers.base import MAX_SEGMENTS
from models.messages import InboundMessage, OutboundMessage
from parsers.segments import segments
from tests.support import PUBLIC_URL, Twilio, sms_params, twilio_signature

# Pieces citizens (and carriers, and attackers) put in a text: commands and form words
# in both languages, Persian and Arabic-Indic digits, tracking codes right and mistyped,
# carrier words, then control characters, NUL, ZWNJ, RTL mark and override, isolates,
# tatweel, BOM, non-characters, emoji (a ZWJ family, a flag), Arabic letter forms,
# markup and format strings.
COMMANDS = ["HELP", "help", "راهنما", "NEW", "NEW 6", "جدید ۶", "MORE", "بیشتر", "MY CASES"]
CODES = ["STATUS 4821 3307 6634", "وضعيت ۴۸۲۱ ۳۳۰۷ ۶۶۳۴", "٤٨٢١٣٣٠٧٦٦٣٤", "482133076635"]
WORDS = ["پرونده‌های من", "EXIT", "انصراف", "BACK", "SKIP", "YES", "بله", "LANG en", "زبان fa"]
CARRIER = ["STOP", "لغو", "11", "START", "12"]
CONTROLS = ["\x00", "\x01\x02\x07\x08\x0b\x0c\x1b\x7f", "\r\n", "\t", "\u200c", "\u200f"]
UNICODE = ["\u202e", "\u2066\u2069", "\u0640", "\ufeff", "\ufffe\uffff", "\U0010ffff", "🙂"]
OTHER = ["👨\u200d👩\u200d👧", "🇮🇷", "ي ك", "ة ۀ", "<Message>&amp;</Response>]]>", "\"'<>&"]
FRAGMENTS = [*COMMANDS, *CODES, *WORDS, *CARRIER, *CONTROLS, *UNICODE, *OTHER, "%s {0}", " ", ""]

fragment = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30))
ordinary_text = st.lists(fragment, max_size=8).map(" ".join)
# Long texts: past max_body_chars, past a multi-part SMS, past the form size limit (the
# last two sizes: the form's bytes on either side of MAX_FORM_BYTES, its other fields
# taking a few hundred).
long_text = st.tuples(
    st.sampled_from(["x", "س", "🙂", "HELP ", "%&=+", "\x00", "\u200c۱"]),
    st.one_of(st.integers(1, 2000), st.sampled_from([5_000, 12_000, 30_000, 70_000])),
).map(lambda pair: pair[0] * pair[1])
at_the_limit = st.integers(MAX_FORM_BYTES - 600, MAX_FORM_BYTES + 50).map(lambda n: "x" * n)
# A lone surrogate cannot be UTF-8; it is sent %-escaped or as its raw bytes.
with_surrogate = st.tuples(
    ordinary_text, st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), ordinary_text
).map("".join)
bodies = st.one_of(
    ordinary_text, ordinary_text, ordinary_text, long_text, at_the_limit, with_surrogate
)

SENDERS = [
    *("+989121234567", "+989351112233", "09121234567", "۰۹۱۲۱۲۳۴۵۶۷", "+98 912 123 4567"),
    *("+15005550006", "12345", "7726", "CityBank", "whatsapp:+989121234567"),  # short, alpha
    *("whatsapp:", "not a phone", "+", "0", " ", "", "\x00", "+989121234567\x00"),
    *("x" * 64, "x" * 65),
]
senders = st.one_of(
    st.sampled_from(SENDERS[:10]), st.sampled_from(SENDERS), st.text(min_size=1, max_size=70)
)
SIDS = ["", "S", "SM", "SM" + "f" * 32, "x" * 64, "x" * 65, "SM\x00\x00", "SM\u200f۱۲"]
sids = st.one_of(
    st.uuids().map(lambda u: f"SM{u.hex}"),
    st.uuids().map(lambda u: f"SM{u.hex}"),
    st.sampled_from(SIDS),
    st.text(max_size=70),
)
# How a field appears in the form: absent, once, or several times (the last one counts).
presence = st.sampled_from(["once"] * 8 + ["absent", "twice"])
SIGNATURES = ["valid"] * 15 + ["missing", "forged", "stale", "wrong_url", "empty"]
CONTENT_TYPES = [FORM_TYPE] * 15 + [
    f"{FORM_TYPE}; charset=utf-8",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
]


@dataclass
class Webhook:
    pairs: list[tuple[str, str]]
    signature: str
    content_type: str
    # A lone surrogate's bytes sent as they are (not valid UTF-8) instead of %-escaped.
    raw_bytes: bool = False

    def encoded(self) -> bytes:
        escaped = urlencode(self.pairs, encoding="utf-8", errors="surrogatepass").encode("ascii")
        if not self.raw_bytes:
            return escaped
        return _SURROGATE_ESCAPE.sub(lambda m: unquote_to_bytes(m.group(0)), escaped)

    def seen_by_gateway(self) -> list[tuple[str, str]]:
        """The form the gateway decodes: a %-escaped lone surrogate's bytes are not UTF-8
        and become U+FFFD, as `urllib.parse` decodes them; that is what Twilio would sign."""
        return [(_replaced(k), _replaced(v)) for k, v in self.pairs]

    def is_utf8(self) -> bool:
        return not self.raw_bytes or not any(
            _has_surrogate(k) or _has_surrogate(v) for k, v in self.pairs
        )

    def headers(self) -> dict[str, str]:
        headers = {"content-type": self.content_type} if self.content_type else {}
        url = PUBLIC_URL + "/sms/twilio"
        pairs = self.seen_by_gateway()
        if self.signature == "valid":
            headers["x-twilio-signature"] = twilio_signature(url, pairs)
        elif self.signature == "forged":
            headers["x-twilio-signature"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
        elif self.signature == "stale":  # signed before the body was changed
            headers["x-twilio-signature"] = twilio_signature(url, [*pairs, ("Body", "X")])
        elif self.signature == "wrong_url":
            headers["x-twilio-signature"] = twilio_signature(
                "https://evil.example/sms/twilio", pairs
            )
        elif self.signature == "empty":
            headers["x-twilio-signature"] = ""
        return headers

    def field(self, name: str) -> str | None:
        """The value the gateway reads: the last of a repeated field."""
        values = [v for k, v in self.seen_by_gateway() if k == name]
        return values[-1] if values else None

    def expected_status(self) -> int:
        """What the contract says this request gets (DESIGN.md, gateway/twilio_sms.py)."""
        if self.content_type.split(";")[0].strip().lower() != FORM_TYPE:
            return 415
        if len(self.encoded()) > MAX_FORM_BYTES:
            return 413
        if not self.is_utf8():
            return 400
        if self.signature != "valid":
            return 403
        sid, sender, to = self.field("MessageSid"), self.field("From"), self.field("To")
        if sid is None or not 2 <= len(sid) <= 64:
            return 400
        if sender is None or not 1 <= len(sender) <= 64:
            return 400
        if to is not None and len(to) > 64:
            return 400
        return 200


# A surrogate code point as 'surrogatepass' writes it in UTF-8 (ED A0-BF 80-BF), %-escaped.
_SURROGATE_ESCAPE = re.compile(rb"%ED%[AB][0-9A-F]%[89AB][0-9A-F]")


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _replaced(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@st.composite
def webhooks(draw: st.DrawFn) -> Webhook:
    pairs: list[tuple[str, str]] = [
        ("ToCountry", "IR"),
        ("NumMedia", "0"),
        ("SmsStatus", "received"),
        ("AccountSid", "AC" + "0" * 32),
        ("ApiVersion", "2010-04-01"),
    ]
    for name, values in (("MessageSid", sids), ("From", senders), ("Body", bodies)):
        how = draw(presence)
        if how != "absent":
            pairs.append((name, draw(values)))
        if how == "twice":
            pairs.append((name, draw(values)))
    if draw(st.booleans()):
        pairs.append(("To", draw(st.sampled_from(["+982100000000", "", "y" * 65]))))
    if draw(st.integers(0, 9)) == 0:
        pairs.append(("OptOutType", draw(st.sampled_from(["STOP", "START", "HELP", ""]))))
    extra = draw(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=3))
    pairs += [("X" + key, value) for key, value in extra]  # never one of the fields above
    order = draw(st.permutations(range(len(pairs))))
    return Webhook(
        pairs=[pairs[i] for i in order],
        signature=draw(st.sampled_from(SIGNATURES)),
        content_type=draw(st.sampled_from(CONTENT_TYPES)),
        raw_bytes=draw(st.booleans()),
    )


@dataclass
class Seen:
    """What the sweep has stored so far (by MessageSid as stored) and the TwiML each got."""

    stored: set[str] = field(default_factory=set)
    twiml: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def seen(database_url: str) -> Seen:
    """One per database: the examples of a run share its rows."""
    return Seen()


async def _counts(app: Any, sid: str | None = None) -> tuple[int, int, int]:
    """Inbound rows, outbound rows, and inbound rows with this (stored) MessageSid."""
    async with app.state.runtime.sessions() as session:
        inbound = await session.scalar(select(func.count()).select_from(InboundMessage))
        outbound = await session.scalar(select(func.count()).select_from(OutboundMessage))
        mine = 0
        if sid is not None:
            mine = await session.scalar(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.channel == "sms", InboundMessage.provider_id == sid)
            )
    return inbound or 0, outbound or 0, mine or 0


async def _check_answered(app: Any, response: Any, sid: str) -> tuple[int, int, int]:
    """A 200's TwiML parses as XML, each <Message> within budget; its MessageSid has one
    row, handled without a handler error. Returns `_counts(app, sid)`."""
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)  # raises on anything that is not XML
    assert root.tag == "Response"
    for message in root.iter("Message"):
        body = message.text or ""
        assert body.strip(), "an empty <Message>"
        assert segments(body) <= MAX_SEGMENTS, f"{segments(body)} segments: {body!r}"
    counts = await _counts(app, sid)
    assert counts[2] == 1
    async with app.state.runtime.sessions() as session:
        row = (
            await session.execute(
                select(InboundMessage).where(
                    InboundMessage.channel == "sms", InboundMessage.provider_id == sid
                )
            )
        ).scalar_one()
    assert row.handled_at is not None and row.error is None, row.error
    return counts


def _fuzz_settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@_fuzz_settings(150)
@given(hook=webhooks(), again=st.booleans())
async def test_any_webhook_gets_its_contracted_answer(
    twilio: Twilio, app: Any, hook: Webhook, again: bool, seen: Seen
) -> None:
    before = (await _counts(app))[:2]
    response = await twilio.client.post(
        "/sms/twilio", content=hook.encoded(), headers=hook.headers()
    )
    assert response.status_code < 500, response.text
    expected = hook.expected_status()
    event(f"status {expected}")  # the mix, with --hypothesis-show-statistics
    assert response.status_code == expected, (response.status_code, response.text[:300])
    if expected != 200:
        assert (await _counts(app))[:2] == before, "a refused webhook stored something"
        return

    sid = (hook.field("MessageSid") or "").replace("\x00", "")  # as stored (NULs dropped)
    inbound, outbound, _ = await _check_answered(app, response, sid)
    if sid in seen.stored:
        # a delivery of a MessageSid stored before: nothing new, the same answer
        assert (inbound, outbound) == before
        if sid in seen.twiml and not hook.field("OptOutType"):
            assert response.text == seen.twiml[sid]
    else:
        assert inbound == before[0] + 1
        seen.stored.add(sid)
    if not hook.field("OptOutType"):  # Twilio answered those itself: no TwiML from us
        seen.twiml.setdefault(sid, response.text)

    if again:  # Twilio's retry of the very same request
        retry = await twilio.client.post(
            "/sms/twilio", content=hook.encoded(), headers=hook.headers()
        )
        assert retry.status_code == 200
        assert retry.text == response.text
        assert await _counts(app, sid) == (inbound, outbound, 1)


def _valid_answer(spec: Any, districts: list[int]) -> st.SearchStrategy[str]:
    """Answers a field of this type takes (as a citizen would type them)."""
    by_type: dict[str, list[str]] = {
        "national_id": ["0012345679", "۰۰۱۲۳۴۵۶۷۹"],
        "postal_code": ["1435678911", "۱۴۳۵۶-۷۸۹۱۱"],
        "mobile": ["09121234567", "+989121234567"],
        "date": ["1403/05/20", "۱۴۰۳/۰۵/۲۰", "2024-08-10"],
        "choice": ["1", "۱"],
        "yes_no": ["بله", "no"],
        "district": [str(districts[0]), str(districts[-1])],
        "number": [str(int(spec.min if spec.min is not None else 1))],
    }
    if spec.type == "text":
        return st.one_of(st.sampled_from(["۱۲۳/۴۵", "123/45"]), ordinary_text.filter(str.strip))
    return st.sampled_from(by_type[spec.type])


_conversation_senders = iter(range(10**6))


@_fuzz_settings(40)  # each example is a conversation of 7-20 texts
@given(data=st.data())
async def test_forms_answered_with_anything_stay_well_formed(
    twilio: Twilio, app: Any, city_config: Any, data: st.DataObject
) -> None:
    """A form walked with valid answers, junk, and control words mixed: every answer is
    a 200 with XML TwiML within budget, and every text is stored and handled."""
    number = data.draw(st.sampled_from([s.number for s in city_config.services]), label="service")
    service = city_config.service_by_number(number)
    districts = city_config.district_numbers(service.code)
    junk = st.one_of(ordinary_text, st.sampled_from(["قبلی", "BACK", "رد", "SKIP", "ویرایش ۲"]))
    texts = [data.draw(st.sampled_from([f"NEW {service.number}", f"جدید {service.number}"]))]
    for spec in service.fields:
        texts += data.draw(st.lists(junk, max_size=2), label=f"junk for {spec.key}")
        texts.append(data.draw(_valid_answer(spec, districts), label=spec.key))
    texts.append(data.draw(st.sampled_from(["بله", "YES", "ویرایش ۱", "EXIT", "HELP"])))
    sender = f"+98935{next(_conversation_senders):07d}"
    for text in texts:
        params = sms_params(text, sender)
        response = await twilio.post(params)
        assert response.status_code == 200, (text, response.text[:300])
        await _check_answered(app, response, params["MessageSid"].replace("\x00", ""))
