"""What a citizen is told when their case changes: the text, in their language, in budget.

Status changes and public notes are announced; internal notes never are. The text is
channel-neutral: the gateway sends it by SMS or wraps it in an email.
"""

from __future__ import annotations

from handlers.base import MAX_SEGMENTS, City
from models.cases import Case
from parsers import tracking
from parsers.display import localize_digits
from parsers.segments import segments


def notification_text(
    city: City, case: Case, language: str, *, status_changed: bool, note: str | None
) -> str:
    """The announcement of a change; a long note is shortened to keep two segments."""
    code = tracking.format_code(case.code)
    service = city.service_name(case.service, language)
    if status_changed:
        head = city.text(
            "notify_status",
            language,
            code=code,
            service=service,
            status=city.status_name(case.status, language),
        )
    else:
        head = city.text("notify_note_only", language, code=code, service=service)
    head = localize_digits(head, language)
    if not note:
        return head
    line = localize_digits(city.text("status_note", language, note=note), language)
    text = f"{head}\n{line}"
    while segments(text) > MAX_SEGMENTS and len(line) > 12:
        line = line[: len(line) - 5].rstrip() + "…"
        text = f"{head}\n{line}"
    return text
