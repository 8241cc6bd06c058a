"""An open-loop load generator: requests at fixed times, whatever the answers do.

    python -m bench.openloop --url http://127.0.0.1:PORT --bodies FILE.jsonl \
        --rate 50 --seconds 10

Request i is due at start + i/rate. It is sent at that time (or as soon as the
generator can, if it fell behind) on its own task, without waiting for earlier ones,
and its latency is measured from its *scheduled* time, so a server that stalls is
charged for every request that piled up behind the stall (no coordinated omission).
Prints one JSON object: p50/p90/p99/max in ms, the rate achieved, errors, and how far
behind schedule the generator itself sent (`send_lag_p99_ms`; if that is large the
generator, not the server, was the bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import percentile
from bench.signing import PATH, Signed, read_jsonl

FORM = "application/x-www-form-urlencoded"


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    signed: Signed,
    due: float,
    sent_at: list[float],
    latencies: list[float],
    errors: dict[str, int],
) -> None:
    loop = asyncio.get_running_loop()
    sent_at.append(loop.time() - due)
    headers = {"Content-Type": FORM, "X-Twilio-Signature": signed.signature}
    try:
        async with session.post(url, data=signed.body.encode(), headers=headers) as response:
            await response.read()
            if not 200 <= response.status < 300:
                key = f"status_{response.status}"
                errors[key] = errors.get(key, 0) + 1
    except TimeoutError:
        errors["timeout"] = errors.get("timeout", 0) + 1
        return
    except aiohttp.ClientError as exc:
        key = type(exc).__name__
        errors[key] = errors.get(key, 0) + 1
        return
    latencies.append(loop.time() - due)


async def run(
    url: str, bodies: list[Signed], rate: float, seconds: float, timeout: float
) -> dict[str, Any]:
    total = min(len(bodies), max(1, round(rate * seconds)))
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        start = loop.time() + 0.05
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(
                    _one(session, url + PATH, bodies[i], due, lags, latencies, errors)
                )
            )
        sending = loop.time() - start
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start
    latencies.sort()
    lags.sort()
    ms = 1000.0
    return {
        "rate": rate,
        "scheduled": total,
        "completed": len(latencies),
        "seconds": round(elapsed, 3),
        "achieved_rps": round(total / sending, 2) if sending > 0 else None,
        "p50_ms": round(percentile(latencies, 50) * ms, 3),
        "p90_ms": round(percentile(latencies, 90) * ms, 3),
        "p99_ms": round(percentile(latencies, 99) * ms, 3),
        "max_ms": round(latencies[-1] * ms, 3) if latencies else None,
        "send_lag_p99_ms": round(percentile(lags, 99) * ms, 3),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL of the server")
    parser.add_argument("--bodies", required=True, type=Path, help="signed bodies (JSON lines)")
    parser.add_argument("--rate", required=True, type=float, help="requests per second")
    parser.add_argument("--seconds", required=True, type=float)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    bodies = read_jsonl(args.bodies)
    work = run(args.url, bodies, args.rate, args.seconds, args.timeout)
    try:
        import uvloop

        result = uvloop.run(work)
    except ImportError:
        result = asyncio.run(work)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
