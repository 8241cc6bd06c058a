"""Operator API for keywords: the effective table, and run-time additions and changes.

The effective table is config.yaml's keywords plus the operators' rows. A change is
refused (409, with every reason) when after normalisation it collides with another
command's keyword, with a carrier word of another meaning, or sits so close to another
command's keyword that a typo's suggestion would confuse them. Every process reads the
table from the database for each message, so a change acts everywhere at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field

from gateway.api_common import (
    BODY_RESPONSES,
    INT32_MAX,
    INT32_MIN,
    NO_NUL,
    OPERATOR_RESPONSES,
    problems,
)
from gateway.auth import Operator
from gateway.city import CommandName
from gateway.keyword_work import KeywordRefused, add_keyword, change_keyword, remove_keyword
from gateway.runtime import Runtime
from gateway.twilio_sms import RuntimeDep
from models.keywords import Keyword, operator_keywords
from parsers.grammar import check_keywords
from parsers.normalize import normalize

KeywordId = Annotated[int, Path(ge=INT32_MIN, le=INT32_MAX)]
router = APIRouter(prefix="/api/v1/keywords", tags=["keywords"], responses=OPERATOR_RESPONSES)


class KeywordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: CommandName
    language: Literal["fa", "en"]
    keyword: str = Field(min_length=1, max_length=64, pattern=NO_NUL)


class KeywordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: CommandName | None = None
    language: Literal["fa", "en"] | None = None
    keyword: str | None = Field(default=None, min_length=1, max_length=64, pattern=NO_NUL)


class KeywordOut(BaseModel):
    id: int | None
    command: str
    language: str
    keyword: str
    matches_as: str
    source: Literal["config", "operator"]
    created_by: str | None = None
    created_at: datetime | None = None


class KeywordTable(BaseModel):
    keywords: list[KeywordOut]
    problems: list[dict[str, str]]


async def _rows(runtime: Runtime) -> list[Keyword]:
    async with runtime.sessions() as session:
        return await operator_keywords(session)


def _triples(runtime: Runtime, rows: list[Keyword], skip: int | None = None) -> list[Any]:
    return runtime.config.keyword_triples() + [
        (r.command, r.language, r.keyword) for r in rows if r.id != skip
    ]


def _refuse(reasons: list[str]) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, {"refused": reasons})


@router.get("", response_model=KeywordTable)
async def list_keywords(runtime: RuntimeDep, actor: Operator) -> dict[str, Any]:
    """The effective keyword table and the problems `citygate keywords check` would show."""
    rows = await _rows(runtime)
    table = [
        KeywordOut(
            id=None, command=c, language=lang, keyword=k, matches_as=normalize(k), source="config"
        )
        for c, lang, k in runtime.config.keyword_triples()
    ] + [
        KeywordOut(
            id=r.id,
            command=r.command,
            language=r.language,
            keyword=r.keyword,
            matches_as=r.normal,
            source="operator",
            created_by=r.created_by,
            created_at=r.created_at,
        )
        for r in rows
    ]
    problems = [
        {"keyword": p.keyword, "command": p.command, "severity": p.severity, "reason": p.reason}
        for p in check_keywords(_triples(runtime, rows))
    ]
    return {"keywords": table, "problems": problems}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeywordOut,
    responses={**problems(409), **BODY_RESPONSES},
)
async def add(body: KeywordIn, runtime: RuntimeDep, actor: Operator) -> KeywordOut:
    """Add a keyword for a command; refused with the reasons when it would be ambiguous."""
    try:
        row = await add_keyword(
            runtime, command=body.command, language=body.language, keyword=body.keyword, actor=actor
        )
    except KeywordRefused as exc:
        raise _refuse(exc.reasons) from None
    return _out(row)


def _out(row: Keyword) -> KeywordOut:
    return KeywordOut(
        id=row.id,
        command=row.command,
        language=row.language,
        keyword=row.keyword,
        matches_as=row.normal,
        source="operator",
        created_by=row.created_by,
        created_at=row.created_at,
    )


@router.patch(
    "/{keyword_id}", response_model=KeywordOut, responses={**problems(404, 409), **BODY_RESPONSES}
)
async def change(
    keyword_id: KeywordId, body: KeywordChange, runtime: RuntimeDep, actor: Operator
) -> KeywordOut:
    """Change an operator keyword's word, command or language, with the same checks."""
    try:
        row = await change_keyword(
            runtime,
            keyword_id,
            command=body.command,
            language=body.language,
            keyword=body.keyword,
            actor=actor,
        )
    except KeywordRefused as exc:
        raise _refuse(exc.reasons) from None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no operator keyword with that id")
    return _out(row)


@router.delete("/{keyword_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
async def remove(keyword_id: KeywordId, runtime: RuntimeDep, actor: Operator) -> None:
    """Remove an operator keyword (config.yaml's own are changed in that file)."""
    if not await remove_keyword(runtime, keyword_id, actor=actor):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no operator keyword with that id")
