"""The message pipeline without HTTP: `gateway.pipeline.process` called in-process.

Not part of `make bench`; the tool behind the before/after ladder in docs/BENCHMARKS.md,
which isolates the database path from HTTP, wrk and the second core:

    .venv/bin/python -m bench.pipeline [--db sqlite|postgres] [--concurrency 32] [--messages 2000]

One process, one event loop (uvloop), a fresh database. 256 senders first send one HELP
each (their contacts then exist, as in the webhook part); then `concurrency` callers
send `messages` messages between them, the webhook part's mix (half HELP, a quarter
`STATUS code` of a case of another contact, a quarter the same with its PIN). Prints
messages/s, the CPU time of the process per message (all its threads: aiosqlite's
included) and how many groups the group commit made.

With `--http` each message is instead a signed webhook request (`bench.signing`, the
same mix) handed to the app's ASGI callable as uvicorn hands it, without a socket: the
route, its middleware and FastAPI are counted, uvicorn's parsing and writing are not
(`bench.instructions` counts the instructions of either mode).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from pydantic import SecretStr

from bench.common import CONFIG
from bench.server import database
from bench.signing import AUTH_TOKEN, PATH, PUBLIC_URL, Signed, webhook_bodies
from gateway.app import create_app, settle_heap
from gateway.pipeline import InboundText, process
from gateway.runtime import Runtime
from gateway.settings import Settings, load_city_config
from models.cases import create_case
from models.contacts import get_or_create_contact
from parsers import tracking


async def _case(runtime: Runtime) -> tuple[str, str]:
    """A case of a contact that is not among the senders: (code, PIN)."""
    async with runtime.sessions.begin() as session:
        owner = await get_or_create_contact(session, channel="sms", address="+989350000000")
        case, pin = await create_case(
            session,
            service="land_use_inquiry",  # as the webhook part's case (bench/server.py)
            contact=owner,
            channel="sms",
            fields={
                "postal_code": "1435678911",
                "district": "6",
                "plate_number": "123/45",
                "intended_use": "residential",
            },
            district=6,
            actor="bench",
            make_code=tracking.generate,
        )
    return case.code, pin


class _Asgi:
    """Signed webhook requests handed to the app as uvicorn hands them (no socket)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def post(self, signed: Signed) -> None:
        body = signed.body.encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
                (b"x-twilio-signature", signed.signature.encode()),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        given = False
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal given
            if given:
                await asyncio.Event().wait()  # the client never goes away
            given = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await self.app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"the webhook answered {status}")


async def run(url: str, concurrency: int, messages: int, http: bool = False) -> dict[str, float]:
    settings = Settings(
        database_url=url,
        config=CONFIG,
        data_dir=Path(tempfile.mkdtemp()),
        sms_limit_messages=10**9,  # never reached, still counted (bench.server)
        lookup_limit_failures=10**9,
    )
    if http:
        settings = settings.model_copy(
            update={"twilio_auth_token": SecretStr(AUTH_TOKEN), "public_url": PUBLIC_URL}
        )
        app = create_app(settings, load_city_config(CONFIG))
        settle_heap()  # as `citygate serve` does (gateway.app.app_from_env)
        runtime = app.state.runtime
    else:
        runtime = Runtime.create(settings, load_city_config(CONFIG))
    await runtime.migrate()
    try:
        code, pin = await _case(runtime)
        senders = [f"+98912{n:07d}" for n in range(256)]
        for n, sender in enumerate(senders):
            await process(runtime, InboundText("sms", f"SMwarm{n}", sender, "HELP"))
        texts = ["HELP", f"STATUS {code}", "HELP", f"STATUS {code} {pin}"]
        todo = list(range(messages))

        signed = webhook_bodies(messages, code, pin) if http else []
        asgi = _Asgi(app) if http else None

        async def caller() -> None:
            while todo:
                n = todo.pop()
                if asgi is not None:
                    await asgi.post(signed[n])
                    continue
                text = texts[n % 4]
                await process(runtime, InboundText("sms", f"SM{n}", senders[n % 256], text))

        group = runtime.inbound_group
        groups0 = group.groups if group else 0
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        group = runtime.inbound_group
        return {
            "messages_per_s": messages / wall,
            "cpu_ms_per_message": cpu / messages * 1000,
            "groups": (group.groups - groups0) if group else 0,
        }
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--http", action="store_true", help="through the app's webhook route (signed, no socket)"
    )
    args = parser.parse_args()
    for n in range(args.runs):
        with tempfile.TemporaryDirectory() as work, database(args.db, Path(work)) as db:
            got = uvloop.run(run(db.url, args.concurrency, args.messages, args.http))
        print(
            f"run {n + 1}: {args.db} c={args.concurrency}: {got['messages_per_s']:.0f} msgs/s, "
            f"{got['cpu_ms_per_message']:.2f} ms CPU/msg, {got['groups']:.0f} groups "
            f"for {args.messages} messages",
            flush=True,
        )


if __name__ == "__main__":
    main()
