"""The operators' web pages at /admin: server-rendered, usable without JavaScript,
Persian and right-to-left, every citizen-supplied text escaped by Jinja2.

Sign-in takes an operator token and sets a signed session cookie; every form carries
the session's CSRF token. The pages do the same work as the API, through the same code.
Keywords, dead letters and reports are in `gateway.admin_pages`, on the same router.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway import admin_session
from gateway.auth import operator_for
from gateway.case_work import CaseWorkError, Change, apply_change
from gateway.runtime import Runtime
from models.cases import find_case, search_cases
from models.contacts import Contact
from models.messages import messages_of_contact
from parsers import tracking
from parsers.display import format_date
from parsers.fields import display_value
from parsers.normalize import fold_digits

router = APIRouter(prefix="/admin", include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
EVENT_NAMES = {
    "created": "ثبت",
    "status": "تغییر وضعیت",
    "note": "یادداشت",
    "message": "پیام شهروند",
    "assign": "واگذاری",
}


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def session_of(request: Request) -> admin_session.AdminSession | None:
    runtime = runtime_of(request)
    found = admin_session.read(runtime.secret, request.cookies.get(admin_session.COOKIE))
    if found is None or found.operator not in runtime.operators:
        return None
    return found


def page(
    request: Request,
    name: str,
    session: admin_session.AdminSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    context.update(
        operator=session.operator if session else None,
        csrf=session.csrf if session else context.get("csrf"),
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def to_login() -> RedirectResponse:
    return RedirectResponse("/admin/login", status_code=303)


async def csrf_form(request: Request, session: admin_session.AdminSession) -> dict[str, str] | None:
    """The posted form, or None when its CSRF token is not the session's."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    return form if admin_session.csrf_ok(session.csrf, form.get("csrf")) else None


async def posted(request: Request) -> tuple[admin_session.AdminSession, dict[str, str]] | Response:
    """The signed-in operator's session and the posted form, or the response that refuses
    it: the sign-in page without a session, 403 without the session's CSRF token."""
    session = session_of(request)
    if session is None:
        return to_login()
    form = await csrf_form(request, session)
    if form is None:
        return forbidden()
    return session, form


def forbidden() -> Response:
    return Response("the form's CSRF token does not match your session", status_code=403)


@router.get("")
async def home() -> RedirectResponse:
    return RedirectResponse("/admin/cases", status_code=303)


def secure_cookies(runtime: Runtime) -> bool:
    """Whether cookies go over https only: when the public URL is https."""
    return (runtime.settings.public_url or "").startswith("https://")


def set_login_cookie(response: Response, runtime: Runtime, token: str) -> None:
    """The sign-in form's CSRF token, also in a cookie (the form has no session yet)."""
    response.set_cookie(
        admin_session.LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(runtime),
        path="/admin",
    )


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", None, csrf=token)
    set_login_cookie(response, runtime_of(request), token)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not admin_session.csrf_ok(request.cookies.get(admin_session.LOGIN_COOKIE), form.get("csrf")):
        return forbidden()
    name = operator_for(runtime, form.get("token", ""))
    response: Response
    if name is None:
        token = secrets.token_urlsafe(24)
        response = page(
            request,
            "login.html",
            None,
            status_code=401,
            csrf=token,
            errors=["رمز دسترسی درست نیست."],
        )
        set_login_cookie(response, runtime, token)
        return response
    response = RedirectResponse("/admin/cases", status_code=303)
    response.set_cookie(
        admin_session.COOKIE,
        admin_session.issue(runtime.secret, name),
        httponly=True,
        samesite="strict",
        secure=secure_cookies(runtime),
        path="/admin",
        max_age=admin_session.LIFETIME,
    )
    response.delete_cookie(admin_session.LOGIN_COOKIE, path="/admin")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    _session, _form = checked
    response = to_login()
    response.delete_cookie(admin_session.COOKIE, path="/admin")
    return response


@router.get("/cases")
async def cases_page(request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return to_login()
    runtime, config = runtime_of(request), runtime_of(request).config
    params = request.query_params
    district = fold_digits(params.get("district", "")).strip()
    filters = {k: params.get(k) or None for k in ("q", "status", "service", "channel")}
    filters["district"] = district or None
    async with runtime.sessions() as db:
        found = await search_cases(
            db,
            status=filters["status"],
            service=filters["service"],
            channel=filters["channel"],
            district=int(district) if district.isascii() and district.isdigit() else None,
            text=fold_digits(filters["q"]) if filters["q"] else None,
            limit=200,
        )
    rows = [
        {
            "code": c.code,
            "display": tracking.format_code(c.code),
            "service": config.service_name(c.service, "fa"),
            "status": config.status_name(c.status, "fa"),
            "district": c.district or "—",
            "channel": c.channel,
            "date": format_date(c.created_at, "fa"),
        }
        for c in found
    ]
    return page(
        request,
        "cases.html",
        session,
        cases=rows,
        filters=filters,
        statuses=[(k, v.fa) for k, v in config.statuses.items()],
        services=[(s.code, s.name.fa) for s in config.services],
    )


async def _case_view(runtime: Runtime, code: str) -> dict[str, Any] | None:
    config = runtime.config
    async with runtime.sessions() as db:
        case = await find_case(db, code=code)
        if case is None:
            return None
        contact = await db.get(Contact, case.contact_id)
        inbound, outbound = await messages_of_contact(db, contact_id=case.contact_id)
    service = config.service(case.service)
    specs = {f.key: f for f in service.fields} if service else {}

    def shown(key: str, value: Any) -> str:
        spec = specs.get(key)
        if spec is None:
            return "—" if value is None else str(value)
        return display_value(spec, value, "fa", lambda n: config.district_label(n, "fa"))

    messages: list[dict[str, Any]] = [
        {"at": m.received_at, "direction": "ورودی", "text": m.body} for m in inbound
    ]
    messages += [{"at": m.created_at, "direction": "خروجی", "text": m.body} for m in outbound]
    return {
        "code": case.code,
        "display": tracking.format_code(case.code),
        "service": config.service_name(case.service, "fa"),
        "status": config.status_name(case.status, "fa"),
        "district": case.district or "—",
        "department": case.department,
        "channel": case.channel,
        "contact": contact.address if contact else "",
        "fields": [
            (specs[k].label.fa if k in specs else k, shown(k, v)) for k, v in case.fields.items()
        ],
        "history": [
            {
                "at": e.created_at.strftime("%Y-%m-%d %H:%M"),
                "what": EVENT_NAMES.get(e.kind, e.kind)
                + (f": {config.status_name(e.status_to, 'fa')}" if e.status_to else ""),
                "actor": e.actor,
                "note": e.note,
                "public": e.public,
            }
            for e in case.events
        ],
        "messages": [
            {**m, "at": m["at"].strftime("%Y-%m-%d %H:%M")}
            for m in sorted(messages, key=lambda m: m["at"])
        ],
    }


@router.get("/cases/{code}")
async def case_page(request: Request, code: str, message: str | None = None) -> Response:
    session = session_of(request)
    if session is None:
        return to_login()
    runtime = runtime_of(request)
    view = await _case_view(runtime, code)
    if view is None:
        return Response("no such case", status_code=404)
    return page(
        request,
        "case.html",
        session,
        case=view,
        message=message,
        statuses=[(k, v.fa) for k, v in runtime.config.statuses.items()],
    )


@router.post("/cases/{code}")
async def case_change(request: Request, code: str) -> Response:
    checked = await posted(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    runtime = runtime_of(request)
    change = Change(
        status=form.get("status") or None,
        note=form.get("note") or None,
        public=not form.get("internal"),
    )
    async with runtime.sessions.begin() as db:
        case = await find_case(db, code=code)
        if case is None:
            return Response("no such case", status_code=404)
        try:
            await apply_change(db, runtime, case, change, actor=session.operator)
        except CaseWorkError as exc:
            view = await _case_view(runtime, code)
            return page(
                request,
                "case.html",
                session,
                status_code=422,
                case=view,
                errors=[str(exc)],
                statuses=[(k, v.fa) for k, v in runtime.config.statuses.items()],
            )
    return RedirectResponse(f"/admin/cases/{code}?message=ثبت شد", status_code=303)
