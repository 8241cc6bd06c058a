"""The fault suite's load generator: signed Twilio webhooks, retried as Twilio retries.

    python -m tests.faults.loadgen --url http://127.0.0.1:PORT --plan PLAN.json \
        --out RESULTS.jsonl --deadline 150

It runs in a process of its own, so that the gateway it talks to can be killed and
restarted under it. PLAN.json is `{"citizens": [{"sender": "+98912…", "messages":
[{"sid": "SM…", "text": "HELP"}, …]}, …]}` (`build_plan` makes one). Every citizen
sends its messages in order, each only once the one before it got a 200, as a person
waits for an answer before the next step of a form. Each message is signed once, as
Twilio signs it (`bench.signing`: twilio's RequestValidator over the public URL and the
parameters); on a connection error, a timeout or any answer but 200 the SAME request is
sent again after a short pause, until it gets a 200 or the deadline passes.

Twilio's webhooks are delivered at least once: a message marked `"redeliver": n` in
the plan is, after its 200, delivered again n more times at once (the same signed
request, each retried the same way); every such answer must be the first one again.

One JSON line per message goes to RESULTS.jsonl as soon as the message is done (so the
test can follow the progress): its sid, sender and text, the final HTTP status (None
when the deadline passed first), every attempt's outcome with its wall-clock time, the
TwiML of the 200, and the TwiML each redelivery got (`echoes`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from bench.signing import PATH, sign, sms_params

FORM = "application/x-www-form-urlencoded"
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
FIRST_PAUSE = 0.2  # seconds before the first retry; doubles up to MAX_PAUSE
MAX_PAUSE = 1.5


def new_sid() -> str:
    """A MessageSid shaped like Twilio's: SM and 32 hex digits, unique."""
    return "SM" + uuid.uuid4().hex


def phone(n: int) -> str:
    """The n-th made-up Iranian mobile number, in E.164."""
    return f"+98935{n:07d}"


def form_script(n: int) -> list[str]:
    """The texts that file a land-use inquiry (service 6) by SMS, step by step; the
    plate number and the intended use are particular to `n`, so the case can be told
    from any other."""
    return [
        "NEW 6",
        "1435678911",
        str(1 + n % 22),
        f"{100 + n}/45",
        str(1 + n % 4),
        "SKIP",
        "YES",
    ]


FORM_USES = ("residential", "commercial", "office", "mixed")
REDELIVER = 2  # a fifth of the messages are delivered again, twice at once, after their 200


def build_plan(*, code: str, pin: str, citizens: int, per_citizen: int) -> dict[str, Any]:
    """Citizens of three kinds in turn: one files a case by the SMS form, one asks for
    HELP (English and Persian), one asks for the STATUS of case `code` (with and
    without its PIN, in ASCII and in Persian digits). A fifth of the messages are to be
    redelivered after their 200."""
    persian = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
    plan = []
    for n in range(citizens):
        if n % 3 == 0:
            texts = form_script(n)
        elif n % 3 == 1:
            texts = ["HELP" if i % 2 else "راهنما" for i in range(per_citizen)]
        else:
            asked = (
                f"STATUS {code} {pin}",
                f"وضعیت {code.translate(persian)}",
                f"STATUS {code[:4]} {code[4:8]} {code[8:]}",
            )
            texts = [asked[i % 3] for i in range(per_citizen)]
        messages = [
            {"sid": new_sid(), "text": t, "redeliver": REDELIVER if (n + i) % 5 == 0 else 0}
            for i, t in enumerate(texts)
        ]
        plan.append({"sender": phone(n), "messages": messages})
    return {"citizens": plan}


@dataclass
class Sink:
    """Where finished messages are written, one flushed JSON line each."""

    out: TextIO

    def write(self, result: dict[str, Any]) -> None:
        self.out.write(json.dumps(result, ensure_ascii=False) + "\n")
        self.out.flush()


async def deliver(
    client: httpx.AsyncClient, url: str, sender: str, sid: str, text: str, deadline: float
) -> dict[str, Any]:
    """One message: the same signed request until a 200 or the deadline."""
    signed = sign(sms_params(text, sender, sid))
    headers = {"Content-Type": FORM, "X-Twilio-Signature": signed.signature}
    attempts: list[tuple[float, str]] = []
    pause = FIRST_PAUSE
    while True:
        at = time.time()
        try:
            response = await client.post(url, content=signed.body.encode(), headers=headers)
        except httpx.TimeoutException as exc:
            attempts.append((at, f"timeout:{type(exc).__name__}"))
        except httpx.TransportError as exc:
            attempts.append((at, f"error:{type(exc).__name__}"))
        else:
            attempts.append((at, str(response.status_code)))
            if response.status_code == 200:
                return _result(sender, sid, text, 200, attempts, response.text)
        if time.monotonic() + pause > deadline:
            return _result(sender, sid, text, None, attempts, None)
        await asyncio.sleep(pause * random.uniform(0.75, 1.25))
        pause = min(MAX_PAUSE, pause * 2)


def _result(
    sender: str,
    sid: str,
    text: str,
    status: int | None,
    attempts: list[tuple[float, str]],
    twiml: str | None,
) -> dict[str, Any]:
    return {
        "sid": sid,
        "sender": sender,
        "text": text,
        "status": status,
        "attempts": attempts,
        "twiml": twiml,
        "echoes": [],
    }


async def citizen(
    client: httpx.AsyncClient, url: str, plan: dict[str, Any], deadline: float, sink: Sink
) -> None:
    """One citizen's messages, in order; after one that never got its 200 the rest are
    not sent (a person without an answer does not go on with the form)."""
    await asyncio.sleep(random.uniform(0, 0.2))  # not all at the same instant
    for message in plan["messages"]:
        sender, sid, text = plan["sender"], message["sid"], message["text"]
        result = await deliver(client, url, sender, sid, text, deadline)
        if result["status"] == 200 and message.get("redeliver"):
            again = await asyncio.gather(
                *(
                    deliver(client, url, sender, sid, text, deadline)
                    for _ in range(message["redeliver"])
                )
            )
            result["echoes"] = [r["twiml"] for r in again]
            result["attempts"] += [a for r in again for a in r["attempts"]]
        sink.write(result)
        if result["status"] != 200:
            return


async def run(url: str, plan: dict[str, Any], out: Path, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with out.open("a", encoding="utf-8") as f:
        sink = Sink(f)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits) as client:
            await asyncio.gather(
                *(citizen(client, url + PATH, c, deadline, sink) for c in plan["citizens"])
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the gateway's base URL")
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--deadline", type=float, default=150.0, help="seconds in all")
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    return asyncio.run(run(args.url.rstrip("/"), plan, args.out, args.deadline))


if __name__ == "__main__":
    sys.exit(main())
