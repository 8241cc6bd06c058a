"""The Twilio SMS edge: verify the signature, decode strictly, store, answer in TwiML.

`POST /sms/twilio` takes Twilio's inbound webhook and answers in the same HTTP response;
`POST /sms/twilio/status` takes delivery callbacks for what we sent. A missing or wrong
`X-Twilio-Signature` is 403. In development mode (no auth token) unsigned requests are
accepted from loopback only.

Both are plain Starlette routes (`routes`, put first in the app), not FastAPI's: they
take no parameters to validate, and FastAPI's per-request dependency solving, exit
stack and endpoint wrapping were a tenth of a webhook request's CPU (docs/BENCHMARKS.md).
They are for Twilio, not part of the operator API's OpenAPI schema. The inbound route is
also reached without the router: `InboundFastPath`, the app's innermost middleware,
hands `POST /sms/twilio` to `inbound_sms` directly.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from functools import lru_cache
from typing import Annotated
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from twilio.request_validator import (
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    compare,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse

from gateway.metrics import WEBHOOK_REJECTED
from gateway.pipeline import InboundText, process
from gateway.runtime import Runtime
from models.messages import record_delivery_status
from parsers.addresses import normalize_phone
from parsers.errors import ParseError

log = logging.getLogger("citygate.twilio")
INBOUND_PATH = "/sms/twilio"  # where Twilio posts inbound SMS (the console's webhook URL)
STATUS_PATH = f"{INBOUND_PATH}/status"  # where it reports on the SMS we sent
MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime (async: FastAPI runs a plain function dependency in a thread)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class TwilioInbound(BaseModel):
    """The fields of Twilio's inbound SMS webhook we use; unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_sid: str = Field(alias="MessageSid", min_length=2, max_length=64)
    from_: str = Field(alias="From", min_length=1, max_length=64)
    to: str | None = Field(default=None, alias="To", max_length=64)
    body: str = Field(default="", alias="Body")
    opt_out_type: str | None = Field(default=None, alias="OptOutType")


class TwilioStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    MessageSid: str = Field(min_length=2, max_length=64)
    MessageStatus: str | None = Field(default=None, max_length=32)
    SmsStatus: str | None = Field(default=None, max_length=32)
    ErrorCode: str | None = Field(default=None, max_length=16)


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


def signed_url(request: Request, runtime: Runtime) -> str:
    """The URL Twilio signed: the public base URL plus the path and query we received
    (as `request.url` gives them, read from the ASGI scope without building the URL)."""
    base = runtime.settings.public_url
    if base is None:
        return str(request.url)
    scope = request.scope
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    # bytes that are not UTF-8 cannot be in a URL Twilio signed: replaced, they fail the
    # signature (403) instead of failing the request (500)
    query = scope.get("query_string", b"").decode("utf-8", "replace")
    return f"{base}{path}" + (f"?{query}" if query else "")


async def read_verified_form(request: Request, runtime: Runtime) -> ImmutableMultiDict[str, str]:
    """The decoded form, after the signature check; `Refused` otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise Refused(415, f"expected {FORM_TYPE}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise Refused(413, "form too large")
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise Refused(400, "the client went away before sending the whole form") from None
    if len(raw) > MAX_FORM_BYTES:
        raise Refused(413, "form too large")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "form is not valid UTF-8 url-encoding") from None
    form: ImmutableMultiDict[str, str] = ImmutableMultiDict(pairs)
    token = runtime.settings.twilio_auth_token
    signature = request.headers.get("x-twilio-signature")
    if token is None:
        if runtime.settings.dev_mode and _is_loopback(request):
            return form
        raise Refused(403, "unsigned requests are accepted from loopback in development mode only")
    if not signature:
        raise Refused(403, "missing X-Twilio-Signature")
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    url = signed_url(request, runtime)
    if not verify_signature(token.get_secret_value(), url, form, signature, algorithm):
        raise Refused(403, "X-Twilio-Signature does not match")
    return form


def verify_signature(
    token: str,
    url: str,
    params: ImmutableMultiDict[str, str] | dict[str, str] | str,
    signature: str,
    algorithm: str | None = None,
) -> bool:
    """Twilio's own check (`RequestValidator`): the URL with and without its default port,
    every parameter sorted, repeated values included; `params` is the raw body for
    JSON webhooks whose URL carries `bodySHA256`. A form signed over the URL exactly as
    given (the usual case) is checked with one HMAC, by the library's own
    `compute_signature`; anything else gets the library's whole `validate`."""
    validator = _validator(token)
    if not isinstance(params, str) and "bodySHA256" not in url:
        try:
            if compare(validator.compute_signature(url, params, algorithm), signature):
                return True
        except ValueError:  # an algorithm the library does not know: validate says so
            pass
    return bool(validator.validate(url, params, signature, algorithm))


@lru_cache(maxsize=4)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def status_callback(base_url: str, outbound_id: int) -> str:
    """The URL Twilio reports the delivery of our SMS row `outbound_id` to."""
    return f"{base_url}{STATUS_PATH}?outbound={outbound_id}"


def _refusal(exc: Refused) -> Response:
    WEBHOOK_REJECTED.labels(reason=str(exc.status)).inc()
    log.warning("twilio webhook refused (%d): %s", exc.status, exc.reason)
    return Response(exc.reason + "\n", status_code=exc.status, media_type="text/plain")


def render_twiml(messages: list[tuple[str, str | None]]) -> str:
    """TwiML with one <Message> per reply message, each with its status callback URL:
    what `MessagingResponse` writes, character for character. Each <Message> is written
    by it once per text and kept (`_message`); only the callback URL, which names the
    reply's own row, is put in each time."""
    if not messages:
        return _EMPTY
    parts = []
    for body, status_callback in messages:
        if status_callback:
            parts.append(_message(body, True).replace(_URL_SLOT, _attribute(status_callback), 1))
        else:
            parts.append(_message(body, False))
    return _HEAD + "".join(parts) + _TAIL


def _frame() -> tuple[str, str]:
    """What `MessagingResponse` writes before its first <Message> and after its last."""
    response = MessagingResponse()
    response.message("x")
    whole = str(response)
    return whole.split("<Message", 1)[0], whole[whole.rindex("</Message>") + len("</Message>") :]


_EMPTY = str(MessagingResponse())
_HEAD, _TAIL = _frame()
_URL_SLOT = "citygate-status-callback"  # nothing in it is escaped in an attribute


@lru_cache(maxsize=1024)
def _message(body: str, with_callback: bool) -> str:
    """One <Message> as `MessagingResponse` writes it; the callback URL a slot (the first
    place the slot appears: attributes come before the text)."""
    response = MessagingResponse()
    if with_callback:
        response.message(body, action=_URL_SLOT, method="POST")
    else:
        response.message(body)
    whole = str(response)
    assert whole.startswith(_HEAD) and whole.endswith(_TAIL)
    return whole[len(_HEAD) : -len(_TAIL)]


def _attribute(value: str) -> str:
    """An attribute value escaped as ElementTree escapes it (&, <, > and these)."""
    return escape(value, _ATTRIBUTE_ENTITIES)


_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}


# What XML 1.0 cannot hold, not even escaped: C0 controls but tab, LF and CR, lone
# surrogates, U+FFFE and U+FFFF. A reply may quote a citizen's own text (a form's summary)
# or an operator's note; TwiML with one of these does not parse, and Twilio sends nothing.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML cannot carry."""
    return _NOT_XML.sub("", text)


@lru_cache(maxsize=8192)
def _sender(raw_from: str, region: str) -> str:
    """The sender's E.164 number (remembered: the same citizens write again and again)."""
    address = raw_from.strip()
    if address.lower().startswith("whatsapp:"):
        address = address.split(":", 1)[1]
    try:
        return normalize_phone(address, region)
    except ParseError:
        return address  # an alphanumeric sender or short code: kept as given


def _raw(form: ImmutableMultiDict[str, str]) -> dict[str, str | list[str]]:
    """The form as stored on the row: a repeated field as the list of its values."""
    raw: dict[str, str | list[str]] = {}
    for key, value in form.multi_items():
        earlier = raw.get(key)
        if earlier is None:
            raw[key] = value
        elif isinstance(earlier, list):
            earlier.append(value)
        else:
            raw[key] = [earlier, value]
    return raw


async def inbound_sms(request: Request) -> Response:
    """Twilio's inbound SMS webhook; answers with TwiML in the same response."""
    runtime: Runtime = request.app.state.runtime
    try:
        form = await read_verified_form(request, runtime)
        try:
            decoded = TwilioInbound.model_validate(dict(form))
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors())
            raise Refused(400, f"missing or invalid fields: {fields}") from None
    except Refused as exc:
        return _refusal(exc)
    body = decoded.body[: runtime.settings.max_body_chars]
    outcome = await process(
        runtime,
        InboundText(
            channel="sms",
            provider_id=decoded.message_sid,
            from_address=_sender(decoded.from_, runtime.config.default_region),
            to_address=decoded.to,
            body=body,
            raw=_raw(form),
        ),
    )
    base = runtime.settings.public_url or str(request.base_url).rstrip("/")
    messages = [
        (text, status_callback(base, m.outbound_id) if m.outbound_id else None)
        for m in outcome.messages
        if (text := xml_safe(m.text))
    ]
    if decoded.opt_out_type:
        # Twilio's Advanced Opt-Out already answered STOP/START/HELP itself.
        messages = []
    return Response(render_twiml(messages), media_type="application/xml")


async def delivery_status(request: Request) -> Response:
    """Twilio's status callback for an outbound message: the status never moves back."""
    runtime: Runtime = request.app.state.runtime
    try:
        form = await read_verified_form(request, runtime)
        try:
            decoded = TwilioStatus.model_validate(dict(form))
        except ValidationError:
            raise Refused(400, "missing MessageSid") from None
    except Refused as exc:
        return _refusal(exc)
    status = (decoded.MessageStatus or decoded.SmsStatus or "").lower()
    outbound = request.query_params.get("outbound", "")
    async with runtime.sessions.begin() as session:
        row = await record_delivery_status(
            session,
            outbound_id=int(outbound) if outbound.isdigit() and len(outbound) < 12 else None,
            provider_id=decoded.MessageSid,
            status=status,
            error_code=decoded.ErrorCode,
        )
    if row is None:
        log.info("status callback for an unknown message (%s)", status)
    return Response(status_code=204)


routes = [
    Route(INBOUND_PATH, inbound_sms, methods=["POST"], name="twilio_inbound"),
    Route(STATUS_PATH, delivery_status, methods=["POST"], name="twilio_status"),
]


class InboundFastPath:
    """ASGI middleware, the app's innermost: `POST /sms/twilio` goes straight to
    `inbound_sms`, past the layers every other request passes (Starlette's exception
    middleware, FastAPI's exit-stack middleware, the router's matching, the route's
    request-response wrappers): 3 % of a webhook's CPU under load (py-spy,
    docs/BENCHMARKS.md), for a route that raises no HTTP exception and needs none of
    them. The middleware outside it (the access log, the body limit) and the error
    handler of last resort (a 500, logged and counted) are the same for it as for every
    request; any other method or path, `/sms/twilio/status` included, takes the router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == INBOUND_PATH and scope["method"] == "POST":
            response = await inbound_sms(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
