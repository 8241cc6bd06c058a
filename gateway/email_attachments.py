"""Attachments of citizens' mail: allowed types and sizes kept by content hash, outside
the database, and linked to the case they belong to; the refused ones named in the reply.

A file's name is only ever a label: it is never used as a path.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.blobs import store_blob
from gateway.runtime import Runtime
from handlers.base import Context
from models.mail import StoredAttachment, attachments_of
from models.messages import InboundMessage

if TYPE_CHECKING:
    from gateway.email_channel import MailIn

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def label(filename: str) -> str:
    """A file's name as shown to operators and in the reply: line breaks and tabs made
    spaces, other control characters (NUL: no PostgreSQL text may hold it) left out, at
    most 120 characters."""
    return _CONTROL.sub(lambda m: " " if m[0] in "\t\n\r" else "", filename)[:120]


async def store_attachments(
    session: AsyncSession, runtime: Runtime, row: InboundMessage, mail: MailIn, ctx: Context
) -> list[str]:
    """Allowed attachments stored by content hash; the refused ones named in the reply."""
    settings = runtime.settings
    notes: list[str] = []
    megabytes = settings.mail_attachment_max_bytes // (1024 * 1024)
    stored = False
    for attachment in mail.parsed.attachments:
        name = label(attachment.filename)
        allowed = attachment.content_type.lower() in settings.attachment_types
        if not allowed or attachment.size > settings.mail_attachment_max_bytes:
            notes.append(ctx.say("email_attachment_refused", name=name, max=megabytes))
            continue
        # fsynced in a worker thread: the event loop does not stop for the disk
        digest = await asyncio.to_thread(
            store_blob, settings.data_dir, "attachments", attachment.data
        )
        stored = True
        session.add(
            StoredAttachment(
                inbound_id=row.id,
                sha256=digest,
                filename=name,
                content_type=attachment.content_type[:127],
                size=attachment.size,
            )
        )
    if stored:  # (nothing stored: the mail's row changes stay for its one UPDATE)
        await session.flush()
    return notes


async def link_attachments(session: AsyncSession, row: InboundMessage, case_id: int) -> None:
    for attachment in await attachments_of(session, inbound_id=row.id):
        attachment.case_id = case_id
