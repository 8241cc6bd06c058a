"""Operator API for what is owed to citizens: the outbox, its dead letters, retries;
the service catalogue; and a contact's whole conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from gateway.api_common import INT32_MAX, INT32_MIN, OPERATOR_RESPONSES, problems
from gateway.auth import Operator
from gateway.outbox import retry_dead_letter
from gateway.twilio_sms import RuntimeDep
from models.contacts import find_contacts
from models.messages import conversation_of, outbox_rows
from parsers.addresses import normalize_email, normalize_phone
from parsers.errors import ParseError

router = APIRouter(
    prefix="/api/v1", tags=["outbox", "services", "messages"], responses=OPERATOR_RESPONSES
)


class OutboxRow(BaseModel):
    id: int
    channel: str
    kind: str
    to_address: str
    body: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime


@router.get("/outbox", response_model=list[OutboxRow])
async def list_outbox(
    runtime: RuntimeDep,
    actor: Operator,
    state: Literal["pending", "dead", "suppressed", "sent", "queued", "delivered"] = Query(
        "pending", alias="status"
    ),
    limit: int = Query(100, ge=0, le=INT32_MAX),
) -> list[Any]:
    """Outbound messages by status: pending (with attempts and next try), dead letters and
    suppressed ones with the reason."""
    async with runtime.sessions() as session:
        rows = await outbox_rows(session, statuses=(state,), limit=limit)
    return [OutboxRow.model_validate(r, from_attributes=True) for r in rows]


@router.post("/outbox/{row_id}/retry", response_model=OutboxRow, responses=problems(409))
async def retry(
    runtime: RuntimeDep,
    actor: Operator,
    row_id: int = Path(ge=INT32_MIN, le=INT32_MAX),
) -> Any:
    """Send a dead letter again (for an opted-out citizen only once they opt back in)."""
    row = await retry_dead_letter(runtime, row_id, actor=actor)
    if row is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "no dead letter with that id, or its citizen has opted out (STOP)",
        )
    return OutboxRow.model_validate(row, from_attributes=True)


@router.get("/services")
async def services(runtime: RuntimeDep, actor: Operator) -> list[dict[str, Any]]:
    """The service catalogue, as config.yaml defines it."""
    return [s.model_dump() for s in runtime.config.services]


@router.get("/messages", responses=problems(422))
async def messages(
    runtime: RuntimeDep,
    actor: Operator,
    phone: str | None = None,
    email: str | None = None,
) -> list[dict[str, Any]]:
    """A citizen's whole conversation, in and out, across the phone and email given."""
    addresses: list[tuple[str, str]] = []
    try:
        if phone:
            addresses.append(("sms", normalize_phone(phone, runtime.config.default_region)))
        if email:
            addresses.append(("email", normalize_email(email)))
    except ParseError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid address") from None
    if not addresses:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give phone or email")
    async with runtime.sessions() as session:
        contacts = await find_contacts(session, addresses)
        return await conversation_of(session, contact_ids=[c.id for c in contacts])
