"""The admin forms without a browser: sign-in, CSRF on every form, escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest
from sqlalchemy import func, select
from starlette.routing import Route

from gateway.app import create_app
from models.audit import AuditEntry
from models.cases import Case, CaseEvent
from models.keywords import Keyword
from models.messages import OutboundMessage
from tests.support import ADMIN_TOKEN, ROOT, make_settings, sms_params, twilio_signature

BASE = "http://gateway.internal"
FIELDS = {"postal_code": "1435678911", "district": "6", "plate_number": "12", "intended_use": "1"}


@pytest.fixture
def settings(database_url):
    return make_settings(database_url, public_url=None)


async def sign_in(client) -> str:
    page = await client.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = await client.post("/admin/login", data={"csrf": csrf, "token": ADMIN_TOKEN})
    assert response.status_code == 303 and response.headers["location"] == "/admin/cases"
    cases = await client.get("/admin/cases")
    return re.search(r'name="csrf" value="([^"]+)"', cases.text).group(1)


# The form each state-changing admin route takes; a new route must be added here.
FORMS = {
    "/admin/login": {"token": ADMIN_TOKEN},
    "/admin/logout": {},
    "/admin/cases/{code}": {"status": "in_review", "note": "بررسی"},
    "/admin/keywords": {"command": "status", "language": "fa", "keyword": "استعلام"},
    "/admin/keywords/{keyword_id}": {"keyword": "استعلام‌ها"},
    "/admin/keywords/{keyword_id}/remove": {},
    "/admin/outbox/{row_id}/retry": {},
}
CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def routes_of(routes, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, inside included routers too (FastAPI keeps an
    included router as one entry that routes into it)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from routes_of(inner.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, Route):
            yield prefix + route.path, set(route.methods or ())


def changing_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route under /admin that may change something."""
    return sorted(
        (method, path)
        for path, methods in routes_of(app.routes)
        if path.startswith("/admin")
        for method in methods & CHANGING
    )


async def fixtures(app, client, admin_headers) -> dict[str, str]:
    """A case, an operator keyword and a dead letter, for the routes' path parameters."""
    created = await client.post(
        "/api/v1/cases",
        json={"service": "land_use_inquiry", "phone": "09121234567", "fields": FIELDS},
        headers=admin_headers,
    )
    added = await client.post(
        "/api/v1/keywords",
        json={"command": "status", "language": "fa", "keyword": "پیگیر"},
        headers=admin_headers,
    )
    async with app.state.runtime.sessions.begin() as db:
        dead = OutboundMessage(
            channel="sms", to_address="+989121234567", body="x", kind="notification", status="dead"
        )
        db.add(dead)
        await db.flush()
    return {
        "code": created.json()["code"],
        "keyword_id": str(added.json()["id"]),
        "row_id": str(dead.id),
    }


async def state(app) -> tuple:
    """Everything an admin form can change."""
    async with app.state.runtime.sessions() as db:
        return (
            sorted((await db.execute(select(Keyword.id, Keyword.keyword))).all()),
            sorted((await db.execute(select(Case.code, Case.status, Case.district))).all()),
            await db.scalar(select(func.count()).select_from(CaseEvent)),
            sorted((await db.execute(select(OutboundMessage.id, OutboundMessage.status))).all()),
            await db.scalar(select(func.count()).select_from(AuditEntry)),
        )


async def login_form_token(client) -> str:
    """A fresh sign-in form's token (its cookie set on `client`)."""
    page = await client.get("/admin/login")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def test_every_changing_admin_route_refuses_a_missing_or_wrong_csrf_token(
    app, client, admin_headers
):
    """Each POST/PUT/PATCH/DELETE under /admin, with a valid session (or the sign-in
    form's cookie): no token, an empty one, a made-up one, another session's, another
    sign-in form's: 403 and nothing changed. The right token is then accepted."""
    values = await fixtures(app, client, admin_headers)
    routes = changing_routes(app)
    assert {path for _method, path in routes} == set(FORMS), "a new admin route: add to FORMS"
    other_session = await sign_in(client)
    stale_login = await login_form_token(client)
    csrf = await sign_in(client)
    before = await state(app)
    for method, path in routes:
        url, data = path.format(**values), FORMS[path]
        wrongs = [None, "", "x" * 32, other_session, stale_login]
        if path == "/admin/login":
            await login_form_token(client)
            wrongs.append(csrf)
        for wrong in wrongs:
            form = data if wrong is None else {**data, "csrf": wrong}
            refused = await client.request(method, url, data=form)
            assert refused.status_code == 403, (path, wrong, refused.status_code)
            assert "set-cookie" not in refused.headers, (path, wrong)
        assert await state(app) == before, path
        # without a session the right token is no use either
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
            bounced = await c.request(method, url, data={**data, "csrf": csrf})
        assert bounced.status_code in (303, 403), path
        assert await state(app) == before, path
    last = {"/admin/keywords/{keyword_id}/remove": 1, "/admin/logout": 2, "/admin/login": 3}
    for method, path in sorted(routes, key=lambda route: last.get(route[1], 0)):
        token = await login_form_token(client) if path == "/admin/login" else csrf
        form = {**FORMS[path], "csrf": token}
        accepted = await client.request(method, path.format(**values), data=form)
        assert accepted.status_code == 303, (path, accepted.status_code)
    assert await state(app) != before


async def test_login_form_needs_its_own_token_and_a_valid_operator_token(client):
    refused = await client.post("/admin/login", data={"csrf": "forged", "token": ADMIN_TOKEN})
    assert refused.status_code == 403
    page = await client.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    wrong = await client.post("/admin/login", data={"csrf": csrf, "token": "no" * 10})
    assert wrong.status_code == 401
    assert (await client.get("/admin/keywords")).status_code == 303


async def test_keyword_edit_and_citizen_text_escaped(client, admin_headers):
    csrf = await sign_in(client)
    await client.post(
        "/admin/keywords",
        data={"csrf": csrf, "command": "status", "language": "fa", "keyword": "استعلام"},
    )
    listed = (await client.get("/api/v1/keywords", headers=admin_headers)).json()
    keyword_id = next(k["id"] for k in listed["keywords"] if k["source"] == "operator")
    clash = await client.post(
        f"/admin/keywords/{keyword_id}", data={"csrf": csrf, "keyword": "راهنما"}
    )
    assert clash.status_code == 409 and "پذیرفته نشد" in clash.text
    edited = await client.post(
        f"/admin/keywords/{keyword_id}", data={"csrf": csrf, "keyword": "استعلام‌ها"}
    )
    assert edited.status_code == 303
    fields = {
        "postal_code": "1435678911",
        "district": "6",
        "plate_number": "<img src=x onerror=alert(1)>",
        "intended_use": "1",
    }
    created = await client.post(
        "/api/v1/cases",
        json={"service": "land_use_inquiry", "phone": "09121234567", "fields": fields},
        headers=admin_headers,
    )
    params = sms_params("<script>alert(1)</script>", sender="+989121234567")
    signature = twilio_signature("http://gateway.internal/sms/twilio", params)
    sent = await client.post("/sms/twilio", data=params, headers={"x-twilio-signature": signature})
    assert sent.status_code == 200
    page = await client.get(f"/admin/cases/{created.json()['code']}")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    detail = (
        await client.get(f"/api/v1/cases/{created.json()['code']}", headers=admin_headers)
    ).json()
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]


class Forms(HTMLParser):
    """Each <form> of a page: its method, action and inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({**values, "inputs": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(values)


async def test_every_post_form_rendered_carries_the_csrf_token(app, client, admin_headers):
    values = await fixtures(app, client, admin_headers)
    login_page = await client.get("/admin/login")
    login_cookie = client.cookies["citygate_login"]
    csrf = await sign_in(client)
    pages = {"/admin/login": (login_page, login_cookie)}
    for path in ("/admin/cases", "/admin/cases/{code}", "/admin/keywords", "/admin/outbox"):
        pages[path] = (await client.get(path.format(**values)), csrf)
    pages["/admin/stats"] = (await client.get("/admin/stats"), csrf)
    actions = set()
    for path, (page, token) in pages.items():
        assert page.status_code == 200, path
        parser = Forms()
        parser.feed(page.text)
        posted = [f for f in parser.forms if (f.get("method") or "get").lower() == "post"]
        assert posted, path  # every page has at least the sign-out (or sign-in) form
        for form in posted:
            hidden = [i for i in form["inputs"] if i.get("name") == "csrf"]
            assert [(i.get("type"), i.get("value")) for i in hidden] == [("hidden", token)], (
                path,
                form.get("action"),
            )
            actions.add(form["action"])
    # every changing route has a form on some page
    templates = {p.format(**values) for p in FORMS}
    assert templates <= actions, templates - actions


def test_every_post_form_in_the_templates_has_the_csrf_field():
    folder = ROOT / "gateway" / "templates"
    forms = []
    for template in sorted(folder.glob("*.html")):
        forms += [
            (template.name, f) for f in re.findall(r"<form\b.*?</form>", template.read_text(), re.S)
        ]
    posted = [(name, f) for name, f in forms if re.search(r"method=\"post\"", f, re.I)]
    assert len(posted) >= 6
    for name, form in posted:
        assert re.search(r'<input type="hidden" name="csrf" value="\{\{ csrf \}\}">', form), (
            name,
            form,
        )


@pytest.mark.parametrize(
    "public_url, secure", [("https://gateway.city.example", True), (None, False)]
)
async def test_admin_cookies_are_httponly_samesite_strict_and_secure_on_https(
    database_url, city_config, public_url, secure
):
    application = create_app(make_settings(database_url, public_url=public_url), city_config)
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=public_url or BASE) as c:
            page = await c.get("/admin/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            signed_in = await c.post("/admin/login", data={"csrf": token, "token": ADMIN_TOKEN})
    finally:
        await application.state.runtime.close()
    assert signed_in.status_code == 303
    for response, name in ((page, "citygate_login"), (signed_in, "citygate_admin")):
        (cookie,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
        flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
        assert "httponly" in flags and flags["samesite"].strip().lower() == "samesite=strict"
        assert flags["path"].strip() == "Path=/admin"
        assert ("secure" in flags) is secure, cookie
    assert "max-age" in {
        p.strip().split("=")[0].lower() for p in signed_in.headers["set-cookie"].split(";")
    }
