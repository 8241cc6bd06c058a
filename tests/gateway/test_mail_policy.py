"""The cheaper email policy (parsers.mail_policy) and reply rendering read and write
exactly what the standard library's `policy.default` does.

Every message of the email corpus is parsed both ways and must give the same
`ParsedEmail` and the same text for every header; replies written by
gateway.email_render must be byte for byte what the stock way (an `EmailMessage`
serialised by `policy.default`) gave.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import parsers.mime as mime
from gateway.email_render import (
    header_line,
    message_id,
    render_reply,
    reply_bodies,
    reply_subject,
)
from parsers.mail_policy import POLICY, CachedHeaderRegistry
from parsers.mime import parse_email
from tests.gateway.test_email_corpus_all import corpus_messages

BODIES = [
    "برای ثبت درخواست این فرم را پر کنید:\n\nخدمت: ۶\nکد پستی:",
    "Send HELP for the list.\n\nThanks",
    "x" * 200 + "\n\nok",  # a line longer than 78: the library picks the encoding
    "مرحله " * 60,  # a long non-ASCII line
    "می\u200cخواهم\n\nپرونده ۴۸۲۱",
    "",
]


def test_every_corpus_message_parses_as_with_policy_default(monkeypatch) -> None:
    messages = corpus_messages()
    ours = [parse_email(raw) for _, raw in messages]
    monkeypatch.setattr(mime, "POLICY", policy.default)
    stock = [parse_email(raw) for _, raw in messages]
    for (name, _), mine, theirs in zip(messages, ours, stock, strict=True):
        assert mine == theirs, name
    for name, raw in messages:
        a = email.message_from_bytes(raw, policy=POLICY)
        b = email.message_from_bytes(raw, policy=policy.default)
        for key in list(b.keys())[:100]:
            try:
                expected = str(b[key])
            except Exception as exc:  # the stock parser's own failure: ours must fail alike
                with pytest.raises(type(exc)):
                    str(a[key])
                continue
            assert str(a[key]) == expected, (name, key)


def test_made_up_header_names_cannot_grow_the_cache() -> None:
    registry = CachedHeaderRegistry()
    mail = email.message_from_string(
        "".join(f"X-Made-Up-{n}: value {n}\n" for n in range(500)) + "Subject: hi\n\nbody\n",
        policy=policy.default.clone(header_factory=registry),
    )
    assert [str(mail[f"X-Made-Up-{n}"]) for n in (0, 499)] == ["value 0", "value 499"]
    assert str(mail["Subject"]) == "hi"
    # one class per kind of header (unstructured, and Subject's unique unstructured)
    assert len(registry._made) == 2
    assert type(mail["X-Made-Up-1"]) is type(mail["X-Made-Up-2"])


def test_the_parsed_header_cache_keeps_only_short_values() -> None:
    from parsers.mail_policy import FETCHED, _fetch

    _fetch.cache_clear()
    long_value = " ".join(["word"] * 400)  # 2,000 characters: a long References, say
    mail = email.message_from_string(
        f"Subject: {long_value}\nFrom: A <a@example.org>\n\nbody\n", policy=POLICY
    )
    assert str(mail["Subject"]) == long_value
    assert str(mail["From"]) == "A <a@example.org>" and str(mail["From"]) == "A <a@example.org>"
    assert _fetch.cache_info().currsize == 1  # From only, read twice, parsed once
    assert _fetch.cache_info().hits == 1
    for n in range(FETCHED + 50):
        email.message_from_string(f"X-N: {n}\n\n", policy=POLICY)["X-N"]
    assert _fetch.cache_info().currsize == FETCHED


def _stock_render(body: str, language: str, v: dict) -> str:
    """The reply as it was made before: an `EmailMessage` built and serialised by the
    standard library (`policy.default`); `v` holds `render_reply`'s other arguments."""
    token, in_reply_to, references = v["token"], v["in_reply_to"], v["references"]
    message = EmailMessage()
    message["From"] = v["mail_from"]
    message["To"] = v["to"]
    message["Subject"] = reply_subject(v["subject"], language, v["code"], reply=v["reply"])
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(token, v["mail_from"])
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = " ".join([*references[-10:], in_reply_to])
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    text, page = reply_bodies(body, language, token)  # the same texts; their MIME differs
    message.set_content(text, charset="utf-8")
    message.add_alternative(page, subtype="html", charset="utf-8")
    return message.as_string()


def _normalised(text: str) -> str:
    text = re.sub(r"={15}\d+==", "BOUNDARY", text)
    return re.sub(r"(?m)^Date: .*$", "Date: D", text)


CASES = [
    dict(subject="Re: NEW ۶", in_reply_to="<a1@example.org>", references=("<a0@example.org>",)),
    dict(subject="Land use", in_reply_to="<a1@example.org>", references=()),
    dict(subject="", in_reply_to=None, references=(), code=None),
    dict(subject="RE: Fwd: پاسخ: " + "درخواست " * 20, in_reply_to="<x@y>", references=()),
    dict(
        subject="A subject long enough to be folded by the library, at seventy-eight or so",
        in_reply_to="<z@example.org>",
        references=tuple(f"<{i}-long-message-id-abcdefgh@example.org>" for i in range(12)),
    ),
    dict(mail_from="شهرداری تهران <desk@city.example>", to="علی@example.org", reply=False),
    dict(mail_from="Desk. Office <desk@city.example>", to='"odd name" <c@example.org>'),
    dict(subject="=?utf-8?q?not_decoded?= and more", in_reply_to="<ü@example.org>"),
]


@pytest.mark.parametrize("language", ["fa", "en"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_replies_are_written_as_the_stock_library_wrote_them(language, case) -> None:
    values = {
        "mail_from": "Desk <desk@city.example>",
        "to": "citizen@example.org",
        "subject": "STATUS",
        "token": "cg.0123456789abcdef.0123456789ab",
        "in_reply_to": None,
        "references": (),
        "code": "482133076634",
        "reply": True,
        **CASES[case],
    }
    for body in BODIES:
        ours = render_reply(body=body, language=language, **values)
        stock = _stock_render(body, language, values)
        assert _normalised(ours.text) == _normalised(stock)
        assert f"\nMessage-ID: {ours.message_id}\n" in ours.text
        parsed = email.message_from_string(ours.text, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        plain = parsed.get_body(("plain",))
        assert plain is not None
        assert plain.get_content().rstrip("\n").endswith(body.rstrip("\n"))
        assert parsed["Date"].datetime.tzinfo is not None
        assert str(parsed["Subject"]).startswith("Re: ") == values["reply"]


NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "MIME-Version",
]
PIECES = st.sampled_from(
    [
        "a",
        "Desk",
        "desk@city.example",
        "<m@x.org>",
        "<",
        ">",
        " ",
        "  ",
        ".",
        ",",
        '"',
        "=?",
        "?=",
        "\t",
        "ü",
        "علی",
        "\u200c",
        "x" * 30,
        "@",
        ";",
        "(",
        ")",
        ":",
    ]
)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(NAMES), value=st.lists(PIECES, max_size=8).map("".join))
def test_a_header_is_written_as_the_library_folds_it(name: str, value: str) -> None:
    try:
        expected = policy.default.fold(name, policy.default.header_store_parse(name, value)[1])
    except Exception as exc:  # what the library refuses, header_line refuses alike
        with pytest.raises(type(exc)):
            header_line(name, value)
        return
    assert header_line(name, value) == expected
