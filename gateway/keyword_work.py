"""Adding, changing and removing operator keywords: the checks and the audit trail,
shared by the API, the admin pages and the command line."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from gateway.runtime import Runtime
from models.audit import record
from models.keywords import Keyword, operator_keywords
from parsers.grammar import check_new_keyword
from parsers.normalize import normalize


class KeywordRefused(ValueError):
    """A keyword change refused; `reasons` says why, one reason a line."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


async def _reasons(
    runtime: Runtime, candidate: tuple[str, str, str], skip: int | None = None
) -> list[str]:
    async with runtime.sessions() as session:
        rows = await operator_keywords(session)
    existing = runtime.config.keyword_triples() + [
        (r.command, r.language, r.keyword) for r in rows if r.id != skip
    ]
    return check_new_keyword(existing, candidate, runtime.config.conversation_word_triples())


async def add_keyword(
    runtime: Runtime, *, command: str, language: str, keyword: str, actor: str
) -> Keyword:
    candidate = (command, language, keyword.strip())
    reasons = await _reasons(runtime, candidate)
    if reasons:
        raise KeywordRefused(reasons)
    async with runtime.sessions.begin() as session:
        row = Keyword(
            command=command,
            language=language,
            keyword=candidate[2],
            normal=normalize(candidate[2]),
            created_by=actor,
        )
        session.add(row)
        try:
            await session.flush()
        except IntegrityError:
            raise KeywordRefused([f"'{row.normal}' was just added by someone else"]) from None
        record(
            session,
            actor=actor,
            action="keyword.add",
            subject=row.normal,
            command=command,
            language=language,
        )
        return row


async def change_keyword(
    runtime: Runtime,
    keyword_id: int,
    *,
    command: str | None,
    language: str | None,
    keyword: str | None,
    actor: str,
) -> Keyword | None:
    """The changed row, None when there is no such operator keyword."""
    async with runtime.sessions() as session:
        current = await session.get(Keyword, keyword_id)
    if current is None:
        return None
    candidate = (
        command or current.command,
        language or current.language,
        (keyword or current.keyword).strip(),
    )
    reasons = await _reasons(runtime, candidate, skip=keyword_id)
    if reasons:
        raise KeywordRefused(reasons)
    async with runtime.sessions.begin() as session:
        row = await session.get(Keyword, keyword_id)
        if row is None:
            return None
        before = {"command": row.command, "language": row.language, "keyword": row.keyword}
        row.command, row.language, row.keyword = candidate
        row.normal = normalize(candidate[2])
        record(session, actor=actor, action="keyword.change", subject=row.normal, before=before)
        await session.flush()
        return row


async def remove_keyword(runtime: Runtime, keyword_id: int, *, actor: str) -> bool:
    async with runtime.sessions.begin() as session:
        row = await session.get(Keyword, keyword_id)
        if row is None:
            return False
        record(
            session,
            actor=actor,
            action="keyword.remove",
            subject=row.normal,
            command=row.command,
            language=row.language,
        )
        await session.delete(row)
        return True
