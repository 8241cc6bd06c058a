"""An open-loop load generator: requests at fixed times, whatever the answers do.

    python -m bench.openloop --url http://127.0.0.1:PORT --bodies FILE.jsonl \
        --rate 50 --seconds 10

Request i is due at start + i/rate. It is sent at that time (or as soon as the
generator can, if it fell behind) without waiting for earlier answers, and its latency
is measured from its *scheduled* time, so a server that stalls is charged for every
request that piled up behind the stall (no coordinated omission).

The generator is lean so that it is not what is measured (docs/BENCHMARKS.md, "The
open-loop generator"): every request is encoded to bytes before the clock starts, each
keep-alive connection is a bare `asyncio.Protocol` that counts the answer's bytes by its
Content-Length, and a request due while every connection is busy waits for the first
one free while another is opened (64 are opened before the start, at most 1,024). It
prints one JSON object: p50/p90/p99/max in ms, the rate achieved, errors, how far behind
schedule requests were written (`send_lag_p99_ms`), the p99 of each second of the
schedule, the connections used, and the CPU the generator itself used
(`generator_cores`, its own user+system time over the run's wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from bench.common import percentile
from bench.signing import PATH, Signed, read_jsonl

FORM = "application/x-www-form-urlencoded"
OPEN_FIRST = 64  # connections opened before the first request is due
MOST = 1024  # connections at most (a server that falls behind gets no more than this)
# A connection idle this long is closed instead of used: uvicorn closes one idle for 5 s
# (`timeout_keep_alive`), and a request written as it does so is reset, which would be
# the generator's error counted against the server.
STALE = 4.0
MS = 1000.0


def encode(host: str, signed: Signed) -> bytes:
    """One complete HTTP/1.1 request, as bytes on the wire."""
    body = signed.body.encode("ascii")
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {FORM}\r\n"
        f"X-Twilio-Signature: {signed.signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class Client(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.due = 0.0  # the scheduled time of the request in flight, 0 when idle
        self.free_since = 0.0
        self.second = 0
        self.need = -1  # bytes of the whole answer, -1 until its head is read
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass

    def send(self, request: bytes, due: float, second: int) -> None:
        assert self.transport is not None  # only idle connections get work
        self.due, self.second, self.need = due, second, -1
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).split(b"\r\n")
            self.status = int(head[0].split(b" ", 2)[1])
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.need = end + 4 + length
        if len(self.buffer) < self.need:
            return
        del self.buffer[: self.need]
        due, self.due = self.due, 0.0
        self.results.answered(self, due, self.second, self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.results.lost(self, self.due, type(exc).__name__ if exc else "closed_by_server")
        self.due = 0.0


class Results:
    """Latencies, errors, and the connections: idle ones on a stack, busy ones counted."""

    def __init__(self, requests: list[bytes], url: str) -> None:
        split = urlsplit(url)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self.requests = requests
        self.latencies: list[float] = []
        self.by_second: dict[int, list[float]] = {}
        self.lags: list[float] = []
        self.errors: dict[str, int] = {}
        self.idle: list[Client] = []
        self.waiting: deque[tuple[int, float, int]] = deque()  # (index, due, second)
        self.opened = 0
        self.most_open = 0  # connections open at once, at most
        self.opening = 0
        self.outstanding = 0
        self.finished = asyncio.Event()

    def error(self, key: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1

    async def open(self) -> None:
        self.opening += 1
        loop = asyncio.get_running_loop()
        try:
            _, client = await loop.create_connection(lambda: Client(self), self.host, self.port)
        except OSError as exc:
            self.error(f"connect_{type(exc).__name__}")
            self.opening -= 1
            if self.waiting and self.opened + self.opening == 0:
                self.open_more()
            return
        self.opening -= 1
        self.opened += 1
        self.most_open = max(self.most_open, self.opened)
        self.free(client)

    def open_more(self) -> None:
        if self.opened + self.opening < MOST:
            asyncio.get_running_loop().create_task(self.open())

    def submit(self, index: int, due: float, second: int) -> None:
        self.outstanding += 1
        stale = time.perf_counter() - STALE
        if self.idle and self.idle[0].free_since < stale:  # the longest idle, one a request
            self.close(self.idle.pop(0))
        while self.idle and self.idle[-1].free_since < stale:
            self.close(self.idle.pop())
        if self.idle:
            self.write(self.idle.pop(), index, due, second)
            return
        self.waiting.append((index, due, second))
        if self.opening < len(self.waiting):
            self.open_more()

    def write(self, client: Client, index: int, due: float, second: int) -> None:
        self.lags.append(time.perf_counter() - due)
        client.send(self.requests[index], due, second)

    def free(self, client: Client) -> None:
        if client.transport is None:  # lost already
            return
        if self.waiting:
            self.write(client, *self.waiting.popleft())
        else:
            client.free_since = time.perf_counter()
            self.idle.append(client)

    def close(self, client: Client) -> None:
        """Close an idle connection before the server does (`STALE`)."""
        if client.transport is not None:
            client.transport.close()

    def answered(self, client: Client, due: float, second: int, status: int) -> None:
        latency = time.perf_counter() - due
        if 200 <= status < 300:
            self.latencies.append(latency)
            self.by_second.setdefault(second, []).append(latency)
        else:
            self.error(f"status_{status}")
        self.free(client)
        self.done_one()

    def lost(self, client: Client, due: float, why: str) -> None:
        self.opened -= 1
        if client in self.idle:
            self.idle.remove(client)  # the server closed an idle keep-alive connection
        if due:
            self.error(why)
            self.done_one()
        if self.waiting and self.opening < len(self.waiting):
            self.open_more()

    def done_one(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.finished.set()


async def run(
    url: str, bodies: list[Signed], rate: float, seconds: float, timeout: float
) -> dict[str, Any]:
    total = min(len(bodies), max(1, round(rate * seconds)))
    host = urlsplit(url).netloc
    results = Results([encode(host, b) for b in bodies[:total]], url)
    await asyncio.gather(*(results.open() for _ in range(min(OPEN_FIRST, total))))
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        results.submit(i, due, int(i / rate))
    sending = time.perf_counter() - start
    if results.outstanding:
        results.finished.clear()
        try:
            await asyncio.wait_for(results.finished.wait(), timeout)
        except TimeoutError:
            results.errors["timeout"] = results.outstanding
    elapsed = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_SELF)
    busy = used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime
    latencies = sorted(results.latencies)
    lags = sorted(results.lags)
    return {
        "rate": rate,
        "scheduled": total,
        "completed": len(latencies),
        "seconds": round(elapsed, 3),
        "achieved_rps": round(total / sending, 2) if sending > 0 else None,
        "p50_ms": round(percentile(latencies, 50) * MS, 3),
        "p90_ms": round(percentile(latencies, 90) * MS, 3),
        "p99_ms": round(percentile(latencies, 99) * MS, 3),
        "max_ms": round(latencies[-1] * MS, 3) if latencies else None,
        "send_lag_p99_ms": round(percentile(lags, 99) * MS, 3),
        "p99_by_second_ms": [
            round(percentile(sorted(results.by_second[s]), 99) * MS, 1)
            if s in results.by_second
            else None
            for s in range(max(results.by_second, default=-1) + 1)
        ],
        "connections": results.most_open,
        "generator_cores": round(busy / elapsed, 3) if elapsed > 0 else None,
        "errors": results.errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL of the server")
    parser.add_argument("--bodies", required=True, type=Path, help="signed bodies (JSON lines)")
    parser.add_argument("--rate", required=True, type=float, help="requests per second")
    parser.add_argument("--seconds", required=True, type=float)
    parser.add_argument("--timeout", type=float, default=30.0, help="for the last answers")
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
