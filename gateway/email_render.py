"""Our outgoing mail: signed Message-IDs, thread headers, text plus right-to-left HTML.

A Message-ID we make carries a token signed with the gateway's secret, so a reply to it
is recognised as ours even if nothing else survives. Every automatic reply says
`Auto-Submitted: auto-replied`. Citizen text only ever reaches a header through
`clean_header`, which removes line breaks, so no header can be injected.

A reply is written out as text, not built as an `EmailMessage` and serialised: that
took the standard library's header objects twice for every header (a parse when set, a
fold when written) and was most of the email path's time. The text is what
`EmailMessage.as_string()` gave, byte for byte (tests/gateway/test_mail_policy.py
renders the stock way beside it): a header that is plain ASCII and fits on a line is
written as it is, which is what the library writes for it, and any other (an encoded
word, a long References line, a display name that needs quoting) is folded by the
library itself; the bodies are encoded by the library's own text encoder.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import random
import re
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email.contentmanager import _encode_text  # type: ignore[attr-defined]
from email.utils import format_datetime

from parsers.mail_policy import POLICY
from parsers.quotes import REPLY_MARKER

_TOKEN = re.compile(r"cg\.([0-9a-f]{16})\.([0-9a-f]{12})")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|پاسخ|پ|رد|ج|جواب)\s*[:：]\s*)+", re.IGNORECASE)
_CASE_TAG = re.compile(r"\[CG-(\d{12})\]")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*"
# Header values the library writes back unchanged when they fit on one line.
_AS_IS = {
    "from": re.compile(rf"(?:{_ATEXT}(?: {_ATEXT})* <{_ADDR_SPEC}>|{_ADDR_SPEC})\Z"),
    "to": re.compile(rf"(?:{_ATEXT}(?: {_ATEXT})* <{_ADDR_SPEC}>|{_ADDR_SPEC})\Z"),
    "message-id": re.compile(rf"<{_ADDR_SPEC}>\Z"),
}
_UNSTRUCTURED = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*\Z")


def sign(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, nonce.encode(), hashlib.sha256).hexdigest()[:12]


def new_token(secret: bytes) -> str:
    nonce = secrets.token_hex(8)
    return f"cg.{nonce}.{sign(secret, nonce)}"


def verified_tokens(secret: bytes, text: str) -> list[str]:
    """Our tokens found in `text` whose signature is right."""
    found = []
    for nonce, mac in _TOKEN.findall(text or ""):
        if hmac.compare_digest(sign(secret, nonce), mac):
            found.append(f"cg.{nonce}.{mac}")
    return found


def message_id(token: str, mail_from: str) -> str:
    domain = mail_from.rsplit("@", 1)[-1].strip("> ") or "citygate.invalid"
    return f"<{token}@{domain}>"


def clean_header(value: str, limit: int = 200) -> str:
    """One line, no control characters, at most `limit` characters."""
    flat = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", value or "")
    return " ".join(flat.split())[:limit]


def strip_reply_prefix(subject: str) -> str:
    return _REPLY_PREFIX.sub("", subject or "").strip()


def case_tag(code: str) -> str:
    return f"[CG-{code}]"


def tagged_code(subject: str) -> str | None:
    match = _CASE_TAG.search(subject or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class RenderedMail:
    """A message for the outbox: its Message-ID and its whole text (LF line ends)."""

    message_id: str
    text: str


# Headers the library parses by a grammar of their own (addresses, dates, MIME); Subject
# and every other header are unstructured text.
_STRUCTURED = set(POLICY.header_factory.registry) - {"subject"}  # type: ignore[attr-defined]


def header_line(name: str, value: str) -> str:
    """`name: value` as the library folds it for `POLICY`, with its line end."""
    line = f"{name}: {value}"
    lower = name.lower()
    if (
        len(line) <= (POLICY.max_line_length or 0)
        and "=?" not in value
        and (lower in _AS_IS or lower not in _STRUCTURED)
        and _AS_IS.get(lower, _UNSTRUCTURED).match(value)
    ):
        return line + "\n"
    folded: str = POLICY.fold(name, POLICY.header_store_parse(name, value)[1])
    return folded


def _transfer_encoding(text: str) -> str | None:
    """base64 where the library would store 8bit, else its own choice (None).

    Non-ASCII text with short lines is kept as 8bit by `set_content`, and `as_string`
    then re-encodes it to base64: the text is the same as encoding it base64 at once.
    """
    lines = text.encode("utf-8").splitlines()
    longest = max((len(line) for line in lines), default=0)
    if text.isascii() or longest > (POLICY.max_line_length or 0):
        return None
    return "base64"


def _text_part(subtype: str, text: str, *, mime_version: bool) -> str:
    encoded: tuple[str, str] = _encode_text(text, "utf-8", _transfer_encoding(text), POLICY)
    cte, data = encoded
    head = f'Content-Type: text/{subtype}; charset="utf-8"\nContent-Transfer-Encoding: {cte}\n'
    return head + ("MIME-Version: 1.0\n" if mime_version else "") + "\n" + data


def _boundary(text: str) -> str:
    """As the library makes one: random digits, and a suffix while the text holds it."""
    boundary = "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="
    chosen, counter = boundary, 0
    while f"--{chosen}" in text:
        chosen, counter = f"{boundary}.{counter}", counter + 1
    return chosen


def reply_subject(subject: str, language: str, code: str | None, *, reply: bool = True) -> str:
    """ "Re: " and the mail's subject without its own Re:/Fwd: (a default when it has
    none), tagged with the case's code; no "Re: " for an announcement."""
    base = strip_reply_prefix(clean_header(subject)) or (
        "درخواست شما" if language == "fa" else "Your request"
    )
    if code and case_tag(code) not in base:
        base = f"{base} {case_tag(code)}"
    line = clean_header(f"Re: {base}", 250)
    return line if reply else line.removeprefix("Re: ")


def reply_bodies(body: str, language: str, token: str) -> tuple[str, str]:
    """The reply's text and its HTML page (right to left for Persian), each opening
    with the reply marker and the token."""
    marker = f"{REPLY_MARKER} {token}"
    direction = "rtl" if language == "fa" else "ltr"
    paragraphs = "".join(
        f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in body.split("\n\n")
    )
    page = (
        f'<!doctype html><html lang="{language}" dir="{direction}"><body>'
        f'<div style="color:#888;font-size:small">{html.escape(marker)}</div>'
        f'<div dir="{direction}" style="text-align:{"right" if direction == "rtl" else "left"}">'
        f"{paragraphs}</div></body></html>"
    )
    return f"{marker}\n\n{body}\n", page


def render_reply(
    *,
    mail_from: str,
    to: str,
    subject: str,
    body: str,
    language: str,
    token: str,
    in_reply_to: str | None,
    references: tuple[str, ...],
    code: str | None = None,
    reply: bool = True,
) -> RenderedMail:
    """The reply as MIME text: UTF-8 text and an HTML alternative. With `reply` false
    (an announcement) the subject has no "Re:"."""
    subject_line = reply_subject(subject, language, code, reply=reply)
    msgid = message_id(token, mail_from)
    headers = [
        header_line("From", mail_from),
        header_line("To", to),
        header_line("Subject", subject_line),
        f"Date: {format_datetime(datetime.now(UTC))}\n",
        header_line("Message-ID", msgid),
    ]
    if in_reply_to:
        headers.append(header_line("In-Reply-To", in_reply_to))
        headers.append(header_line("References", " ".join([*references[-10:], in_reply_to])))
    headers.append("Auto-Submitted: auto-replied\nX-Auto-Response-Suppress: All\n")
    plain_text, page = reply_bodies(body, language, token)
    plain = _text_part("plain", plain_text, mime_version=False)
    rich = _text_part("html", page, mime_version=True)
    b = _boundary(plain + rich)
    text = (
        "".join(headers)
        + f'MIME-Version: 1.0\nContent-Type: multipart/alternative;\n boundary="{b}"\n\n'
        + f"--{b}\n{plain}\n--{b}\n{rich}\n--{b}--\n"
    )
    return RenderedMail(msgid, text)
