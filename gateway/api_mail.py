"""Operator API for the mailbox: the messages that could not be handled, with the error.

Such a message is kept in the mailbox's failed folder and, byte for byte, in the data
folder under its SHA-256; this list is where an operator finds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gateway.api_common import INT32_MAX, OPERATOR_RESPONSES
from gateway.auth import Operator
from gateway.twilio_sms import RuntimeDep
from models.messages import failed_mail_rows

router = APIRouter(prefix="/api/v1/mail", tags=["mail"], responses=OPERATOR_RESPONSES)


class FailedMail(BaseModel):
    id: int
    received_at: datetime
    error: str | None
    raw_sha256: str | None


@router.get("/failed", response_model=list[FailedMail])
async def failed_mail(
    runtime: RuntimeDep, actor: Operator, limit: int = Query(100, ge=0, le=INT32_MAX)
) -> list[Any]:
    """Messages the poller moved to the failed folder, newest first."""
    async with runtime.sessions() as session:
        rows = await failed_mail_rows(session, limit=limit)
    return [FailedMail.model_validate(r, from_attributes=True) for r in rows]
