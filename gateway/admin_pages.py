"""The operators' pages for keywords, dead letters and reports (see `gateway.admin`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import admin_session
from gateway.admin import page, posted, router, runtime_of, session_of, to_login
from gateway.keyword_work import KeywordRefused, add_keyword, change_keyword, remove_keyword
from gateway.outbox import retry_dead_letter
from gateway.settings import COMMANDS
from gateway.stats import compute_stats
from models.keywords import operator_keywords
from models.messages import outbox_rows
from parsers.grammar import check_keywords


async def _keywords_page(
    request: Request, session: admin_session.AdminSession, status_code: int = 200, **extra: Any
) -> HTMLResponse:
    runtime = runtime_of(request)
    async with runtime.sessions() as db:
        rows = await operator_keywords(db)
    table: list[dict[str, Any]] = [
        {"id": None, "command": c, "language": lang, "keyword": k, "source": "config.yaml"}
        for c, lang, k in runtime.config.keyword_triples()
    ]
    table += [
        {
            "id": r.id,
            "command": r.command,
            "language": r.language,
            "keyword": r.keyword,
            "source": f"{r.created_by}",
        }
        for r in rows
    ]
    triples = runtime.config.keyword_triples() + [(r.command, r.language, r.keyword) for r in rows]
    problems = [f"{p.keyword}: {p.reason}" for p in check_keywords(triples)]
    return page(
        request,
        "keywords.html",
        session,
        status_code=status_code,
        keywords=table,
        problems=problems,
        commands=COMMANDS,
        **extra,
    )


@router.get("/keywords")
async def keywords_page(request: Request, message: str | None = None) -> Response:
    session = session_of(request)
    if session is None:
        return to_login()
    return await _keywords_page(request, session, message=message)


@router.post("/keywords")
async def keywords_add(request: Request) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    command, language = form.get("command", ""), form.get("language", "")
    if command not in COMMANDS or language not in ("fa", "en"):
        return await _keywords_page(request, session, 422, errors=["دستور یا زبان نامعتبر است."])
    try:
        await add_keyword(
            runtime_of(request),
            command=command,
            language=language,
            keyword=form.get("keyword", ""),
            actor=session.operator,
        )
    except KeywordRefused as exc:
        return await _keywords_page(
            request, session, 409, errors=[f"پذیرفته نشد: {r}" for r in exc.reasons]
        )
    return RedirectResponse("/admin/keywords?message=افزوده شد", status_code=303)


@router.post("/keywords/{keyword_id}")
async def keywords_change(request: Request, keyword_id: int) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    try:
        row = await change_keyword(
            runtime_of(request),
            keyword_id,
            command=None,
            language=None,
            keyword=form.get("keyword") or None,
            actor=session.operator,
        )
    except KeywordRefused as exc:
        return await _keywords_page(
            request, session, 409, errors=[f"پذیرفته نشد: {r}" for r in exc.reasons]
        )
    if row is None:
        return Response("no such keyword", status_code=404)
    return RedirectResponse("/admin/keywords?message=ویرایش شد", status_code=303)


@router.post("/keywords/{keyword_id}/remove")
async def keywords_remove(request: Request, keyword_id: int) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    session, _form = checked
    await remove_keyword(runtime_of(request), keyword_id, actor=session.operator)
    return RedirectResponse("/admin/keywords?message=حذف شد", status_code=303)


@router.get("/outbox")
async def outbox_page(request: Request, message: str | None = None) -> Response:
    session = session_of(request)
    if session is None:
        return to_login()
    runtime = runtime_of(request)
    async with runtime.sessions() as db:
        rows = await outbox_rows(db, statuses=("dead", "suppressed"), limit=200)
    view = [
        {
            "id": r.id,
            "channel": r.channel,
            "to": r.to_address,
            "body": r.body,
            "status": r.status,
            "reason": r.last_error,
        }
        for r in rows
    ]
    return page(request, "outbox.html", session, rows=view, message=message)


@router.post("/outbox/{row_id}/retry")
async def outbox_retry(request: Request, row_id: int) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    session, _form = checked
    if await retry_dead_letter(runtime_of(request), row_id, actor=session.operator) is None:
        return RedirectResponse("/admin/outbox?message=ارسال ممکن نیست", status_code=303)
    return RedirectResponse("/admin/outbox?message=در صف ارسال", status_code=303)


@router.get("/stats")
async def stats_page(request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return to_login()
    runtime = runtime_of(request)
    config = runtime.config
    stats = await compute_stats(runtime)
    names: dict[str, tuple[str, Callable[[str], str]]] = {
        "by_service": ("بر پایه خدمت", lambda k: config.service_name(k, "fa")),
        "by_status": ("بر پایه وضعیت", lambda k: config.status_name(k, "fa")),
        "by_district": (
            "بر پایه منطقه",
            lambda k: config.district_label(int(k), "fa") if k.isdigit() else k,
        ),
        "by_channel": ("بر پایه کانال", lambda k: {"sms": "پیامک", "email": "ایمیل"}.get(k, k)),
    }
    charts = []
    for key, (title, label) in names.items():
        counts = stats[key]
        top = max(counts.values(), default=0) or 1
        charts.append((title, [(label(k), v, int(380 * v / top)) for k, v in counts.items()]))
    return page(request, "stats.html", session, stats=stats, charts=charts)
