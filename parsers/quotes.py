"""The new part of a reply: everything above the quoted message and the signature.

Our own reply marker comes first (it survives every client), then the Persian and Arabic
"… wrote:" lines and the Outlook separators that `mail-parser-reply` does not know, then
`mail-parser-reply` itself for the rest. Text is capped before the regular expressions
run, so a pathological quote cannot stall the poller.

>>> new_part("وضعیت را بفرستید\\n\\nدر تاریخ ۱۴۰۳/۰۵/۲۰، علی نوشت:\\n> قبلی")
'وضعیت را بفرستید'
>>> new_part("YES\\n\\nOn Mon, 2 Nov 2026 at 10:00, City <c@x.org> wrote:\\n> old")
'YES'
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser

REPLY_MARKER = "##- citygate: reply above this line -##"
MAX_SCAN_CHARS = 50_000
_CUTS = [
    re.compile(re.escape(REPLY_MARKER)),
    re.compile(r"^.*##-.*citygate.*-##.*$", re.MULTILINE),
    # Persian: «در تاریخ …، فلانی نوشت:» / «… نوشته است:» (Gmail and Outlook in Persian)
    re.compile(r"^[^\n]{0,200}نوشت(?:ه است|ه)?\s*:\s*$", re.MULTILINE),
    # Arabic: «في … كتب …:» / «كتب …:»
    re.compile(r"^[^\n]{0,200}(?:كتب|کتب)[^\n]{0,200}:\s*$", re.MULTILINE),
    # the same, wrapped by the client before the address: «في … كتب … <» / «addr>:»
    re.compile(
        r"^\s*(?:في|فی)\s[^\n]{0,200}(?:كتب|کتب)[^\n]{0,200}\n[^\n]{0,200}:\s*$", re.MULTILINE
    ),
    # Outlook headers in Persian and Arabic, and its separators
    re.compile(
        r"^\s*(?:از|من|From)\s*:\s*[^\n]+\n\s*(?:ارسال شده|أرسل|تاريخ|Sent|Date)\s*:", re.MULTILINE
    ),
    re.compile(
        r"^\s*-{2,}\s*(?:Original Message|پیام اصلی|الرسالة الأصلية)\s*-{2,}",
        re.MULTILINE | re.IGNORECASE,
    ),
    re.compile(r"^_{10,}\s*$", re.MULTILINE),
]
# A quote header wrapped by the client: its first line opens with one of these.
_WRAPPED_START = re.compile(r"^\s*(در تاریخ|در روز|On |Le |Am |في |فی |بتاريخ)")
_SENT_FROM = re.compile(
    r"^\s*(Sent from my .*|Get Outlook for .*|ارسال شده از .*|فرستاده شده از .*)$",
    re.MULTILINE | re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^-- ?$", re.MULTILINE)
_PARSER = EmailReplyParser(languages=["en", "de", "fr", "es"])


def new_part(text: str) -> str:
    """The text the sender wrote in this message, without quotes and signature."""
    if not isinstance(text, str):
        return ""
    text = text.replace("\r\n", "\n")[:MAX_SCAN_CHARS]
    for pattern in _CUTS:
        match = pattern.search(text)
        if match:
            head = text[: match.start()]
            lines = head.rstrip("\n").split("\n")
            if len(lines) > 1 and _WRAPPED_START.match(lines[-1]):
                head = "\n".join(lines[:-1])
            text = head
    text = _SENT_FROM.sub("", text)
    signature = _SIGNATURE.search(text)
    if signature:
        text = text[: signature.start()]
    lines = [line for line in text.split("\n") if not line.lstrip().startswith(">")]
    text = "\n".join(lines)
    try:
        reply = _PARSER.parse_reply(text)
    except Exception:  # the library is a heuristic: keep our own cut on any failure
        reply = None
    return (reply if reply is not None and reply.strip() else text).strip()
