"""The cheaper email policy (parsers.mail_policy) and reply rendering read and write
exactly what the standard library's `policy.default` does.

Every message of the email corpus is parsed both ways and must give the same
`ParsedEmail` and the same text for every header; replies rendered with the policy and
the up-front transfer encoding must serialise byte for byte as the stock path did.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage

import pytest

import gateway.email_render as email_render
import parsers.mime as mime
from gateway.email_render import render_reply
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


def _render(body: str, language: str) -> str:
    message = render_reply(
        mail_from="Desk <desk@city.example>",
        to="citizen@example.org",
        subject="Re: NEW ۶",
        body=body,
        language=language,
        token="cg.0123456789abcdef.0123456789ab",
        in_reply_to="<a1@example.org>",
        references=("<a0@example.org>",),
        code="482133076634",
    )
    text = message.as_string()
    assert message.as_string() == text  # serialising does not change the message
    text = re.sub(r"={15}\d+==", "BOUNDARY", text)
    return re.sub(r"(?m)^Date: .*$", "Date: D", text)


@pytest.mark.parametrize("language", ["fa", "en"])
def test_replies_serialise_as_the_stock_library_did(monkeypatch, language) -> None:
    ours = [_render(body, language) for body in BODIES]
    monkeypatch.setattr(email_render, "POLICY", policy.default)
    monkeypatch.setattr(email_render, "_transfer_encoding", lambda text: None)
    stock = [_render(body, language) for body in BODIES]
    assert ours == stock
    for body, text in zip(BODIES, ours, strict=True):
        parsed = email.message_from_string(text, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        plain = parsed.get_body(("plain",))
        assert plain is not None
        assert plain.get_content().rstrip("\n").endswith(body.rstrip("\n"))
