"""The ceiling: a bare FastAPI app that does only the webhook's fixed work.

`POST /sms/twilio` reads the form exactly as gateway/twilio_sms.py reads it (content
type and size checks, strict UTF-8 url-decoding into a multi-dict), checks `X-Twilio-
Signature` over the public URL with the webhook's own `verify_signature` (twilio's
`RequestValidator`), decodes the same fields with the webhook's pydantic model, and
returns a constant TwiML reply: no database, no parsing of the text. It runs under
uvicorn with the same settings as `citygate serve` (bench/server.py), so
citygate/ceiling is the share of the HTTP+signature budget that the gateway keeps while
doing its real work.

    python -m bench.ceiling --port P --workers N

which serves it as `citygate serve` serves the gateway (`gateway.serving.run`: uvicorn
with proxy headers and log level info, and with several workers each on a socket of its
own), with uvicorn's access log.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from pydantic import ValidationError
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, get_signature_algorithm

from bench.signing import AUTH_TOKEN, PUBLIC_URL
from gateway.twilio_sms import (  # the very model and check the webhook uses
    TwilioInbound,
    verify_signature,
)

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
    "Commands: HELP, STATUS code, NEW n, MY CASES, EXIT, LANG fa|en, STOP, START"
    "</Message></Response>"
)


def _plain(text: str, status: int) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain")


def create_app() -> FastAPI:
    token = os.environ.get("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    base = os.environ.get("CITYGATE_PUBLIC_URL", PUBLIC_URL).rstrip("/")
    app = FastAPI(title="citygate bench ceiling")

    @app.post("/sms/twilio")
    async def inbound(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_TYPE:
            return _plain(f"expected {FORM_TYPE}", 415)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            return _plain("form too large", 413)
        raw = await request.body()
        if len(raw) > MAX_FORM_BYTES:
            return _plain("form too large", 413)
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return _plain("form is not valid UTF-8 url-encoding", 400)
        form: ImmutableMultiDict[str, str] = ImmutableMultiDict(pairs)
        signature = request.headers.get("x-twilio-signature")
        if not signature:
            return _plain("missing X-Twilio-Signature", 403)
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        query = request.url.query
        url = f"{base}{request.url.path}" + (f"?{query}" if query else "")
        if not verify_signature(token, url, form, signature, algorithm):
            return _plain("X-Twilio-Signature does not match", 403)
        try:
            TwilioInbound.model_validate(dict(form))
        except ValidationError:
            return _plain("missing or invalid fields", 400)
        return Response(TWIML, media_type="application/xml")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import argparse

    from gateway.serving import run

    parser = argparse.ArgumentParser(description="the bench's ceiling")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    run(
        "bench.ceiling:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        log_level="info",
    )


if __name__ == "__main__":
    main()
