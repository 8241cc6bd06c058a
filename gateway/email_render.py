"""Our outgoing mail: signed Message-IDs, thread headers, text plus right-to-left HTML.

A Message-ID we make carries a token signed with the gateway's secret, so a reply to it
is recognised as ours even if nothing else survives. Every automatic reply says
`Auto-Submitted: auto-replied`. Citizen text only ever reaches a header through
`clean_header`, which removes line breaks, so no header can be injected.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import secrets
from email.message import EmailMessage
from email.utils import formatdate

from parsers.mail_policy import POLICY
from parsers.quotes import REPLY_MARKER

_TOKEN = re.compile(r"cg\.([0-9a-f]{16})\.([0-9a-f]{12})")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|پاسخ|پ|رد|ج|جواب)\s*[:：]\s*)+", re.IGNORECASE)
_CASE_TAG = re.compile(r"\[CG-(\d{12})\]")


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


def _transfer_encoding(text: str) -> str | None:
    """base64 where the library would store 8bit, else its own choice (None).

    Non-ASCII text with short lines is kept as 8bit, and every `as_string` then copies
    the whole message and re-encodes the part to base64 (the generator's surrogate
    path): the same output, made at twice the cost. Said up front, it is made once.
    """
    lines = text.encode("utf-8").splitlines()
    longest = max((len(line) for line in lines), default=0)
    if text.isascii() or longest > (POLICY.max_line_length or 0):
        return None
    return "base64"


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
) -> EmailMessage:
    """The reply as a MIME message: UTF-8 text and an HTML alternative."""
    base = strip_reply_prefix(clean_header(subject)) or (
        "درخواست شما" if language == "fa" else "Your request"
    )
    if code and case_tag(code) not in base:
        base = f"{base} {case_tag(code)}"
    message = EmailMessage(policy=POLICY)
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = clean_header(f"Re: {base}", 250)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(token, mail_from)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = " ".join([*references[-10:], in_reply_to])
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    marker = f"{REPLY_MARKER} {token}"
    text = f"{marker}\n\n{body}\n"
    message.set_content(text, charset="utf-8", cte=_transfer_encoding(text))
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
    message.add_alternative(page, subtype="html", charset="utf-8", cte=_transfer_encoding(page))
    return message
