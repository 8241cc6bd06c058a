"""Telling citizens of changes: one outbox row per announcement, on the case's channel.

SMS goes through Twilio's REST API, email through SMTP, both by the outbox worker with
retries. A contact who opted out gets nothing; the row says so, for the operator.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.email_render import new_token, render_reply
from gateway.runtime import Runtime
from handlers.notify import notification_text
from models.cases import Case
from models.contacts import Contact
from models.messages import OutboundMessage
from parsers import tracking


async def queue_notification(
    session: AsyncSession,
    runtime: Runtime,
    case: Case,
    *,
    status_changed: bool,
    note: str | None,
) -> OutboundMessage:
    """Queue the announcement of a status change or public note to the case's contact."""
    contact = await session.get(Contact, case.contact_id)
    assert contact is not None
    language = contact.language or runtime.config.default_language
    text = notification_text(
        runtime.config, case, language, status_changed=status_changed, note=note
    )
    now = runtime.clock()
    row = OutboundMessage(
        channel=contact.channel,
        contact_id=contact.id,
        to_address=contact.address,
        body=text,
        kind="notification",
        status="pending",
        case_id=case.id,
        next_attempt_at=now,
        created_at=now,
    )
    if contact.opted_out:
        row.status, row.last_error = "suppressed", "the citizen opted out (STOP)"
    elif contact.channel == "email":
        settings = runtime.settings
        token = new_token(runtime.secret)
        subject = runtime.config.text(
            "notify_subject",
            language,
            code=tracking.format_code(case.code),
            status=runtime.config.status_name(case.status, language),
        )
        message = render_reply(
            mail_from=settings.mail_from or "citygate@localhost",
            to=contact.address,
            subject=subject,
            body=text,
            language=language,
            token=token,
            in_reply_to=None,
            references=(),
            code=case.code,
            reply=False,
        )
        row.message_id = message.message_id
        row.payload = message.text
    session.add(row)
    await session.flush()
    return row
