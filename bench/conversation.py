"""Multi-step forms through the webhook: complete submissions per second.

`concurrency` citizens, each from a phone number never seen before, fill the form of
service 6 by SMS, one message after the reply to the previous one ("NEW 6", postal
code, district, plate, use, SKIP the optional mobile, YES), again and again until the
time is up. A form counts as complete when the reply to YES carries a valid tracking
code; anything else (a non-200, a reply without a code) is counted as an error.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import percentile, summarize
from bench.signing import PATH, new_tag, phone, sign, sms_params
from parsers import tracking
from parsers.normalize import fold_digits

STEPS = ("NEW 6", "1435678911", "6", "12", "1", "SKIP", "YES")
FORM = "application/x-www-form-urlencoded"
_phones = itertools.count(3_000_000)  # far from the webhook part's senders
_CODE = re.compile(r"\d{4} ?\d{4} ?\d{4}")


@dataclass
class Tally:
    completed: int = 0
    messages: int = 0
    errors: int = 0
    form_seconds: list[float] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(text[:300])


def reply_text(twiml: str) -> str:
    try:
        root = ET.fromstring(twiml)  # noqa: S314 - our own server's answer
    except ET.ParseError:
        return ""
    return "\n".join(el.text or "" for el in root.iter("Message"))


def has_tracking_code(text: str) -> bool:
    return any(tracking.is_valid(m.replace(" ", "")) for m in _CODE.findall(fold_digits(text)))


async def _citizen(
    session: aiohttp.ClientSession, url: str, tag: int, deadline: float, tally: Tally
) -> None:
    sids = itertools.count()
    while time.monotonic() < deadline:
        sender = phone(next(_phones))
        started = time.monotonic()
        last = ""
        for text in STEPS:
            signed = sign(sms_params(text, sender, f"SM{tag:08x}{next(sids):024x}"))
            headers = {"Content-Type": FORM, "X-Twilio-Signature": signed.signature}
            try:
                async with session.post(url, data=signed.body.encode(), headers=headers) as r:
                    body = await r.text()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.problem(f"{text!r}: {type(exc).__name__} {exc}")
                break
            tally.messages += 1
            if status != 200:
                tally.problem(f"{text!r}: HTTP {status} {body[:200]}")
                break
            last = reply_text(body)
        else:
            if has_tracking_code(last):
                tally.completed += 1
                tally.form_seconds.append(time.monotonic() - started)
            else:
                tally.problem(f"YES was not answered with a tracking code: {last!r}")


async def drive(base_url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """One run: `concurrency` citizens filing forms for `seconds` (the last forms finish)."""
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    started = time.monotonic()
    deadline = started + seconds
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(
            *(
                _citizen(session, base_url + PATH, new_tag(), deadline, tally)
                for _ in range(concurrency)
            )
        )
    elapsed = time.monotonic() - started
    durations = sorted(tally.form_seconds)
    return {
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "forms": tally.completed,
        "forms_per_s": tally.completed / elapsed,
        "messages_per_s": tally.messages / elapsed,
        "form_p50_s": round(percentile(durations, 50), 3) if durations else None,
        "form_p99_s": round(percentile(durations, 99), 3) if durations else None,
        "errors": tally.errors,
        "error_samples": tally.samples,
    }


def run_conversation(base_url: str, concurrency: int, seconds: float, runs: int) -> dict[str, Any]:
    """`runs` runs of `drive`; the forms/s figure with median, min and max."""
    results = [asyncio.run(drive(base_url, concurrency, seconds)) for _ in range(runs)]
    return {
        "concurrency": concurrency,
        "forms_per_s": summarize([r["forms_per_s"] for r in results]),
        "messages_per_s": summarize([r["messages_per_s"] for r in results]),
        "form_p50_s": summarize([r["form_p50_s"] for r in results if r["form_p50_s"]]),
        "errors": sum(r["errors"] for r in results),
        "error_samples": [s for r in results for s in r["error_samples"]][:5],
        "runs": results,
    }
