"""An email reply on its way out: the per-address caps, the rendered mail, the outbox row.

The caps (settings `mail_reply_cap_10min`, `mail_reply_cap_day`) count what was queued
to an address in the two windows; a group of mails reads its senders' counts ahead in
one statement (`read_caps`, email's read-ahead in `gateway.pipeline`), and each reply
queued adds to them, so a mail loop stops at the cap even inside one group.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.email_render import new_token, render_reply
from gateway.runtime import Runtime
from handlers.base import Reply
from models.cases import Case
from models.contacts import Contact
from models.inbox import queue_mail_reply
from models.messages import (
    CAP_DAY,
    CAP_RECENT,
    InboundMessage,
    count_sent_since,
    read_sent_counts,
)
from parsers.mime import ParsedEmail


async def read_caps(session: AsyncSession, runtime: Runtime, addresses: list[str]) -> None:
    """The caps' counts of a group's senders, in one statement (`gateway.pipeline`'s
    read-ahead for email)."""
    now = runtime.clock()
    await read_sent_counts(
        session,
        channel="email",
        addresses=addresses,
        since=now - CAP_DAY,
        recent=now - CAP_RECENT,
    )


async def under_cap(session: AsyncSession, runtime: Runtime, address: str) -> bool:
    """Whether another automatic reply to `address` stays within both caps."""
    now = runtime.clock()
    settings = runtime.settings
    day, recent = await count_sent_since(
        session,
        channel="email",
        address=address,
        since=now - CAP_DAY,
        recent=now - CAP_RECENT,
    )
    return recent < settings.mail_reply_cap_10min and day < settings.mail_reply_cap_day


async def queue_reply(
    session: AsyncSession,
    runtime: Runtime,
    row: InboundMessage,
    parsed: ParsedEmail,
    contact: Contact,
    reply: Reply,
    case: Case | None,
) -> list[int]:
    """The reply to `row` rendered as mail and queued in the outbox (with the group's
    writes: the list gets the row's id then), counted against the address's caps. Its
    subject carries the tag of the case the mail is about (`case`, or the row's)."""
    settings = runtime.settings
    case_id = row.case_id or (case.id if case else None)
    code = case.code if case is not None and case.id == case_id else None
    if case_id is not None and code is None:
        found = await session.get(Case, case_id)
        code = found.code if found else None
    token = new_token(runtime.secret)
    message = render_reply(
        mail_from=settings.mail_from or "citygate@localhost",
        to=contact.address,
        subject=parsed.subject,
        body=reply.text,
        language=reply.language,
        token=token,
        in_reply_to=parsed.message_id,
        references=parsed.references,
        code=code,
    )
    return await queue_mail_reply(
        session,
        row,
        contact_id=contact.id,
        to_address=contact.address,
        body=reply.text,
        message_id=message.message_id,
        case_id=case_id,
        payload=message.text,
        now=runtime.clock(),
    )
