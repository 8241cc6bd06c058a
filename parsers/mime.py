"""Bytes to an email we can act on: headers, the text of the new message, attachments.

Parsed from bytes with `email.policy.default` (as parsers.mail_policy.POLICY), never
pre-decoded. Charsets Python lacks (iso-8859-6-i, iso-8859-8-i, ks_c_5601-1987, x-mac-*)
are known through a codec alias registered on import; an unknown charset falls back to
UTF-8 and then windows-1256 with replacement, never an exception. text/plain is
preferred; HTML-only mail is turned into text. NULs are stripped and very long bodies
cut with a visible marker.

>>> raw = (b"From: =?utf-8?b?2LnZhNuM?= <Ali@Example.org>\\r\\nSubject: STATUS 1\\r\\n"
...        b"Message-ID: <a1@example.org>\\r\\n\\r\\nhello\\r\\n")
>>> mail = parse_email(raw)
>>> mail.from_address, mail.from_name, mail.subject, mail.text, mail.message_id
('ali@example.org', 'علی', 'STATUS 1', 'hello', '<a1@example.org>')
"""

from __future__ import annotations

import codecs
import email
import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import getaddresses

from parsers.html_text import html_to_text
from parsers.mail_policy import POLICY

CHARSET_ALIASES = {
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "x-mac-arabic": "mac-arabic",
    "x-mac-farsi": "mac-farsi",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-greek": "mac-greek",
    "x-mac-turkish": "mac-turkish",
    "x-mac-centraleurope": "mac-latin2",
    "x-mac-ce": "mac-latin2",
    "x-mac-icelandic": "mac-iceland",
    "windows-874": "cp874",
    "x-user-defined": "latin-1",
    "x-unknown": "latin-1",
    "unknown-8bit": "latin-1",
}
MAX_TEXT_CHARS = 20_000
TRUNCATED = "\n[… message cut: too long …]"
_MSGID = re.compile(r"<[^<>\s]+>")


def _alias_search(name: str) -> codecs.CodecInfo | None:
    target = CHARSET_ALIASES.get(name.lower().replace("_", "-")) or CHARSET_ALIASES.get(
        name.lower()
    )
    return codecs.lookup(target) if target else None


codecs.register(_alias_search)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_address: str | None
    from_name: str
    subject: str
    date: str | None
    text: str
    html_only: bool
    content_type: str
    headers: tuple[tuple[str, str], ...]
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = field(default_factory=tuple)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), if present."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k == wanted), None)

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self.headers if k == wanted]


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset, with fallbacks; never raises."""
    if charset:
        charset = CHARSET_ALIASES.get(charset.strip().lower(), charset.strip())
    for candidate in (charset, "utf-8", "windows-1256"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeError, ValueError, TypeError):
            continue
    return data.decode("utf-8", errors="replace")


def _unescape(text: str) -> str:
    """Raw 8-bit header bytes (kept as surrogates by the parser) decoded as UTF-8, or as
    windows-1256 when they are not UTF-8."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    return decode_bytes(raw, "utf-8")


def _header_text(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a header the policy cannot parse at all
        return ""
    if value is None:
        return ""
    try:
        return _unescape(str(value))
    except Exception:
        return ""


def _message_ids(value: str) -> tuple[str, ...]:
    return tuple(_MSGID.findall(value or ""))


def _sender(message: Message) -> tuple[str | None, str]:
    raw = _header_text(message, "from")
    try:
        header = message.get("from")
        addresses = getattr(header, "addresses", None)
        if addresses:
            first: Address = addresses[0]
            address = _unescape(first.addr_spec or "").strip().lower()
            if "@" in address.strip("@"):
                return address, _unescape(first.display_name or "")
            return None, _unescape(first.display_name or "")
    except Exception:  # noqa: S110 - a broken From header: the plain parser below
        pass
    pairs = getaddresses([raw])
    if pairs and "@" in pairs[0][1].strip("@"):
        return pairs[0][1].strip().lower(), pairs[0][0]
    return None, ""


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_content_charset())


def _parts(message: Message, limit: int = 500) -> list[Message]:
    """Leaf parts, depth first; an attached message (message/rfc822) is one part, not
    its contents, so a forwarded mail is never read as the sender's own text."""
    leaves: list[Message] = []
    stack = [message]
    while stack and len(leaves) < limit:
        part = stack.pop()
        if part.get_content_type() == "message/rfc822" and part is not message:
            leaves.append(part)
        elif part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(reversed([c for c in children if isinstance(c, Message)]))
        else:
            leaves.append(part)
    return leaves


def _walk(message: Message) -> tuple[list[str], list[str], list[Attachment]]:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in _parts(message):
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            first = inner[0] if isinstance(inner, list) and inner else None
            data = first.as_bytes() if isinstance(first, Message) else b""
            attachments.append(Attachment("forwarded.eml", "message/rfc822", data))
            continue
        content_type = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if disposition == "attachment" or filename or not content_type.startswith("text/"):
            if content_type == "message/delivery-status":
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            attachments.append(Attachment(filename or "attachment", content_type, data))
        elif content_type == "text/plain":
            plain.append(_part_text(part))
        elif content_type == "text/html":
            html.append(_part_text(part))
    return plain, html, attachments


def parse_email(raw: bytes, *, max_text_chars: int = MAX_TEXT_CHARS) -> ParsedEmail:
    """Parse a whole message; broken MIME yields what can be read, never an exception."""
    message = email.message_from_bytes(raw, policy=POLICY)
    # Each header parsed once (the policy parses again at every `get`), the first of
    # each name, as `Message.get` gives it.
    first: dict[str, str] = {}
    headers: list[tuple[str, str]] = []
    for name in message.keys()[:200]:
        lower = name.lower()
        if lower not in first:
            first[lower] = _header_text(message, name)
        headers.append((lower, first[lower].replace("\x00", "")))

    def header(name: str) -> str:
        return first[name] if name in first else _header_text(message, name)

    from_address, from_name = _sender(message)
    try:
        plain, html, attachments = _walk(message)
    except Exception:  # a part too broken to walk: keep the raw text
        plain, html, attachments = [decode_bytes(raw.split(b"\r\n\r\n", 1)[-1], None)], [], []
    html_only = not plain and bool(html)
    text = "\n".join(plain) if plain else html_to_text("\n".join(html))
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > max_text_chars:
        text = text[:max_text_chars] + TRUNCATED
    subject = " ".join(header("subject").replace("\x00", "").split())
    defects = tuple(type(d).__name__ for d in getattr(message, "defects", []))
    content_type = message.get_content_type()
    if content_type == "multipart/report":
        report_type = message.get_param("report-type")
        content_type = f"multipart/report; report-type={report_type}"
    message_ids = _message_ids(header("message-id"))
    return ParsedEmail(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_message_ids(header("in-reply-to")),
        references=_message_ids(header("references")),
        from_address=from_address,
        from_name=from_name,
        subject=subject,
        date=header("date") or None,
        text=text.strip(),
        html_only=html_only,
        content_type=content_type,
        headers=tuple(headers),
        attachments=tuple(attachments),
        defects=defects,
    )


def as_email_message(raw: bytes) -> EmailMessage:
    """The standard library's view of `raw`, for callers that need more than we extract."""
    parsed = email.message_from_bytes(raw, policy=POLICY)
    assert isinstance(parsed, EmailMessage)
    return parsed
