"""Operator API for cases: open one for a walk-in citizen, show it, change its status.

`POST /api/v1/cases` and `PATCH /api/v1/cases/{code}` have fixed shapes that scripts
and the e-service offices rely on (DESIGN.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.api_common import (
    BODY_RESPONSES,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    NO_NUL,
    OPERATOR_RESPONSES,
    problems,
)
from gateway.auth import Operator
from gateway.case_work import CaseWorkError, Change, apply_change
from gateway.twilio_sms import RuntimeDep
from handlers.submission import Rejected, submit
from models.cases import Case, find_case, search_cases
from models.contacts import get_or_create_contact
from models.messages import conversation_of
from parsers import tracking
from parsers.addresses import normalize_email, normalize_phone
from parsers.errors import ParseError
from parsers.normalize import fold_digits

router = APIRouter(prefix="/api/v1/cases", tags=["cases"], responses=OPERATOR_RESPONSES)


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="service code from the catalogue")
    phone: str | None = Field(default=None, description="the citizen's mobile, any format")
    email: str | None = Field(default=None, description="the citizen's email address")
    fields: dict[str, Any] = Field(default_factory=dict)
    district: int | None = None

    @model_validator(mode="after")
    def _one_contact(self) -> CaseCreate:
        if (self.phone is None) == (self.email is None):
            raise ValueError("give exactly one of 'phone' or 'email'")
        return self


class StatusChange(BaseModel):
    """A status change, a note, an assignment, or several at once."""

    model_config = ConfigDict(extra="forbid")

    status: str | None = Field(default=None, pattern=NO_NUL)
    note: str | None = Field(default=None, max_length=1000, pattern=NO_NUL)
    public: bool = Field(default=True, description="false: an internal note, never sent")
    district: int | None = None
    department: str | None = Field(default=None, max_length=128, pattern=NO_NUL)


class NotificationOut(BaseModel):
    id: int
    channel: str
    status: str
    reason: str | None


class EventOut(BaseModel):
    kind: str
    status_from: str | None
    status_to: str | None
    note: str | None
    public: bool
    actor: str
    created_at: datetime


class CaseOut(BaseModel):
    code: str
    code_display: str
    service: str
    status: str
    channel: str
    district: int | None
    department: str | None = None
    fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    history: list[EventOut]
    notification: NotificationOut | None = None


class MessageOut(BaseModel):
    direction: str
    channel: str
    at: datetime
    text: str
    command: str | None
    status: str | None


class CaseDetail(CaseOut):
    messages: list[MessageOut]


class CaseCreated(CaseOut):
    pin: str


def _out(case: Case) -> dict[str, Any]:
    return {
        "code": case.code,
        "code_display": tracking.format_code(case.code),
        "service": case.service,
        "status": case.status,
        "channel": case.channel,
        "district": case.district,
        "department": case.department,
        "fields": case.fields,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "history": [
            EventOut.model_validate(e, from_attributes=True).model_dump() for e in case.events
        ],
    }


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=CaseCreated, responses=BODY_RESPONSES
)
async def open_case(body: CaseCreate, runtime: RuntimeDep, actor: Operator) -> dict[str, Any]:
    """Open a case for a walk-in citizen; the reply carries its tracking code and PIN."""
    config = runtime.config
    service = config.service(body.service)
    if service is None:
        raise _unprocessable(f"unknown service '{body.service}'")
    if body.district is not None and config.district(body.district) is None:
        raise _unprocessable(f"unknown district {body.district}")
    unknown = sorted(set(body.fields) - {f.key for f in service.fields})
    if unknown:
        raise _unprocessable(f"fields not in service '{service.code}': {', '.join(unknown)}")
    answers = {k: None if v is None else str(v) for k, v in body.fields.items()}
    try:
        if body.phone is not None:
            channel, address = "sms", normalize_phone(body.phone, config.default_region)
        else:
            channel, address = "email", normalize_email(body.email or "")
    except ParseError as exc:
        raise _unprocessable(f"invalid contact: {exc}") from None
    async with runtime.sessions.begin() as session:
        contact = await get_or_create_contact(session, channel=channel, address=address)
        outcome = await submit(
            session,
            city=config,
            service=service,
            answers=answers,
            contact=contact,
            channel=channel,
            actor=actor,
            district=body.district,
        )
        if isinstance(outcome, Rejected):
            problems = [
                {
                    "field": p.key,
                    "problem": p.reply_key,
                    "expected": config.text(p.reply_key, "en", **p.values),
                }
                for p in outcome.problems
            ]
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"fields": problems})
        return {**_out(outcome.case), "pin": outcome.pin}


async def _load(runtime: Any, session: Any, code: str) -> Case:
    try:
        compact = tracking.validate(code)
    except ParseError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no case with that code") from None
    case = await find_case(session, code=compact)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no case with that code")
    return case


@router.get("", response_model=list[CaseOut])
async def list_cases(
    runtime: RuntimeDep,
    actor: Operator,
    status: str | None = Query(default=None, pattern=NO_NUL),
    service: str | None = Query(default=None, pattern=NO_NUL),
    district: int | None = Query(default=None, ge=INT32_MIN, le=INT32_MAX),
    channel: str | None = Query(default=None, pattern=NO_NUL),
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = Query(default=None, max_length=100, pattern=NO_NUL, description="free text"),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=INT64_MAX),
) -> list[dict[str, Any]]:
    """Cases by status, service, district, channel, creation dates and free text."""
    async with runtime.sessions() as session:
        found = await search_cases(
            session,
            status=status,
            service=service,
            district=district,
            channel=channel,
            since=since,
            until=until,
            text=fold_digits(q) if q else None,
            limit=limit,
            offset=offset,
        )
        return [_out(case) for case in found]


@router.get("/{code}", response_model=CaseDetail, responses=problems(404))
async def show_case(code: str, runtime: RuntimeDep, actor: Operator) -> dict[str, Any]:
    """A case with its history and its citizen's messages."""
    async with runtime.sessions.begin() as session:
        case = await _load(runtime, session, code)
        messages = await conversation_of(session, contact_ids=[case.contact_id])
        return {**_out(case), "messages": messages}


@router.patch("/{code}", response_model=CaseOut, responses={**problems(404), **BODY_RESPONSES})
async def set_status(
    code: str, body: StatusChange, runtime: RuntimeDep, actor: Operator
) -> dict[str, Any]:
    """Change a case's status, add a public note (sent to the citizen) or an internal one
    (`public: false`, never sent), assign a district or department."""
    change = Change(
        status=body.status,
        note=body.note,
        public=body.public,
        district=body.district,
        department=body.department,
    )
    async with runtime.sessions.begin() as session:
        case = await _load(runtime, session, code)
        try:
            sent = await apply_change(session, runtime, case, change, actor=actor)
        except CaseWorkError as exc:
            raise _unprocessable(str(exc)) from None
        out = _out(case)
        if sent is not None:
            out["notification"] = {
                "id": sent.id,
                "channel": sent.channel,
                "status": sent.status,
                "reason": sent.last_error,
            }
        return out
