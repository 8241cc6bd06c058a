"""The HTTP parts: webhook throughput, latency at a fixed rate, forms, and memory.

For each server (the ceiling, then citygate on SQLite and PostgreSQL, one and two
worker processes) one process tree is started and, in order: a warm-up, `runs` wrk
runs per connection count (for citygate, each just after a run on a ceiling with as many
processes, kept idle beside it: "paired runs"), `runs` open-loop runs at half the best median rate
(citygate only), `runs` conversation runs (for the chosen citygate servers), then
VmHWM of every process is read and the server is stopped. After it stopped, its
database is checked (every stored message handled, none with an error) and its log
searched for exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    PYTHON,
    ROOT,
    BenchError,
    CpuMeter,
    Part,
    summarize,
    worker_peak_mb,
)
from bench.conversation import run_conversation
from bench.server import Server, base_env, database
from bench.signing import PATH, SENDERS, Signed, webhook_bodies, write_jsonl
from bench.wrk import WrkResult, run_wrk

CEILING_POOL = 5000  # the ceiling keeps no state: its bodies may repeat
CEILING_CASE = ("482133076634", "1234")  # a code and PIN for the ceiling's STATUS bodies
FORM = "application/x-www-form-urlencoded"
BENIGN = {"starlette.requests.ClientDisconnect"}  # wrk hung up on queued requests at its end


@dataclass
class HttpSettings:
    servers: list[tuple[str, str | None, int]]  # (ceiling|citygate, sqlite|postgres, workers)
    connections: tuple[int, ...] = (32, 64)
    seconds: float = 10.0
    warmup: float = 3.0
    runs: int = 3
    threads: int = 1
    openloop_seconds: float = 10.0
    conversation_on: set[tuple[str, int]] = field(default_factory=set)  # (db, workers)
    conversation_seconds: float = 10.0
    conversation_concurrency: int = 32
    webhook: bool = True


@dataclass
class HttpParts:
    webhook: Part = field(default_factory=lambda: Part("webhook"))
    fixed_rate: Part = field(default_factory=lambda: Part("fixed_rate"))
    conversation: Part = field(default_factory=lambda: Part("conversation"))
    memory: Part = field(default_factory=lambda: Part("memory"))
    servers: Part = field(default_factory=lambda: Part("servers"))  # database and log checks


async def _prime_async(url: str, bodies: list[Signed], concurrency: int) -> int:
    """Post every body once, `concurrency` at a time; returns the non-200 answers."""
    queue = list(reversed(bodies))
    failures = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while queue:
            signed = queue.pop()
            headers = {"Content-Type": FORM, "X-Twilio-Signature": signed.signature}
            async with session.post(url + PATH, data=signed.body, headers=headers) as response:
                await response.read()
                failures += response.status != 200

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return failures


def prime(server: Server, code: str, pin: str, concurrency: int) -> float:
    """One message from each of the SENDERS numbers (their contacts exist from then on,
    as a city's regular senders' do), which also warms the server; returns req/s."""
    bodies = webhook_bodies(SENDERS, code, pin)
    started = time.monotonic()
    failures = asyncio.run(_prime_async(server.url, bodies, concurrency))
    if failures:
        raise BenchError(f"{server.label}: {failures} of {len(bodies)} warm-up requests failed")
    return len(bodies) / (time.monotonic() - started)


def _count_bodies(rate_guess: float, seconds: float, ceiling: float = 0.0) -> int:
    """Enough distinct bodies for a run: three times the rate seen so far (the first
    guess, from the warm-up, is low), and at least what the paired ceiling served just
    before (the server cannot answer faster than the ceiling does)."""
    return max(20_000, int(rate_guess * seconds * 3) + 500, int(ceiling * seconds * 1.1) + 500)


def _sample_split(server: Server, into: list[int]) -> None:
    into.extend(server.connection_split())


def _wrk_runs(
    server: Server,
    code: str,
    pin: str,
    connections: int,
    rate_guess: float,
    cfg: HttpSettings,
    pair: Server | None = None,
) -> tuple[list[WrkResult], list[dict[str, float]], list[list[int]], list[float]]:
    """`cfg.runs` wrk runs on `server`; with `pair` (a ceiling), each run right after one
    on the ceiling with the same settings, whose req/s are returned too."""
    results: list[WrkResult] = []
    cores: list[dict[str, float]] = []
    splits: list[list[int]] = []
    paired: list[float] = []
    for _ in range(cfg.runs):
        if pair is not None:
            ceiling = run_wrk(
                pair.url,
                webhook_bodies(CEILING_POOL, code, pin),
                connections=connections,
                seconds=cfg.seconds,
                threads=cfg.threads,
            )
            paired.append(ceiling.rps)
            print(f"    paired ceiling x{pair.workers} c={connections}: {ceiling.rps:8.1f} req/s")
        n = (
            CEILING_POOL
            if server.kind == "ceiling"
            else _count_bodies(rate_guess, cfg.seconds, paired[-1] if paired else 0.0)
        )
        bodies = webhook_bodies(n, code, pin)
        split: list[int] = []
        sampler = threading.Timer(cfg.seconds / 2, _sample_split, (server, split))
        sampler.start()
        with CpuMeter(server.pids()) as meter:
            result = run_wrk(
                server.url,
                bodies,
                connections=connections,
                seconds=cfg.seconds,
                threads=cfg.threads,
            )
        cores.append(meter.cores)
        sampler.join()
        splits.append(split)
        results.append(result)
        rate_guess = max(rate_guess, result.rps)
        print(
            f"  {server.label} c={connections}: {result.rps:8.1f} req/s  p50 {result.p50_ms:7.1f}"
            f" ms  p99 {result.p99_ms:7.1f} ms  errors {result.non_2xx + result.socket_errors}"
            + (f"  connections per worker {split}" if server.workers > 1 else ""),
            flush=True,
        )
    return results, cores, splits, paired


def _webhook_row(
    server: Server,
    connections: int,
    results: list[WrkResult],
    cores: list[dict[str, float]],
    splits: list[list[int]],
    paired: list[float],
) -> dict[str, Any]:
    return {
        # the ceiling run just before each run, and each run over it (`bench.report`)
        "paired_ceiling_rps": summarize(paired),
        "paired_ratio": summarize(
            [r.rps / p for r, p in zip(results, paired, strict=True) if p] if paired else []
        ),
        "target": server.kind,
        "db": server.db.kind if server.db else "-",
        "workers": server.workers,
        "connections": connections,
        "rps": summarize([r.rps for r in results]),
        "p50_ms": summarize([r.p50_ms for r in results]),
        "p99_ms": summarize([r.p99_ms for r in results]),
        "non_2xx": sum(r.non_2xx for r in results),
        "socket_errors": sum(r.socket_errors for r in results),
        "timeouts": sum(r.timeouts for r in results),
        "wraps": sum(r.wraps for r in results),
        "server_cpu_cores": summarize([c["server"] for c in cores]),
        "postgres_cpu_cores": summarize([c["postgres"] for c in cores]),
        "other_cpu_cores": summarize([c["other"] for c in cores]),  # the shared machine's noise
        "cpu_cores": cores,
        "connections_per_worker": splits,  # sampled half-way through each run
        "runs": [r.as_dict() for r in results],
        "wrk_output_last_run": results[-1].output if results else "",
    }


def _openloop(
    server: Server, code: str, pin: str, rate: float, cfg: HttpSettings
) -> dict[str, Any]:
    runs = []
    for i in range(cfg.runs):
        path = server.workdir / f"openloop-{i}.jsonl"
        write_jsonl(webhook_bodies(int(rate * cfg.openloop_seconds) + 10, code, pin), path)
        args = [PYTHON, "-m", "bench.openloop", "--url", server.url, "--bodies", str(path)]
        args += ["--rate", f"{rate:.3f}", "--seconds", str(cfg.openloop_seconds)]
        done = subprocess.run(  # noqa: S603 - our own module
            args,
            cwd=ROOT,
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=cfg.openloop_seconds + 120,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"bench.openloop failed:\n{done.stderr[-2000:]}")
        run = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(
            f"  {server.label} open loop {rate:.1f}/s: p50 {run['p50_ms']:.1f} ms"
            f"  p99 {run['p99_ms']:.1f} ms  errors {sum(run['errors'].values())}"
            f"  generator {run['generator_cores']:.2f} cores, {run['connections']} connections",
            flush=True,
        )
        time.sleep(1.0)
    errors: Counter[str] = Counter()
    for run in runs:
        errors.update(run["errors"])
    return {
        "db": server.db.kind if server.db else "-",
        "workers": server.workers,
        "rate": round(rate, 2),
        "p50_ms": summarize([r["p50_ms"] for r in runs]),
        "p99_ms": summarize([r["p99_ms"] for r in runs]),
        "achieved_rps": summarize([r["achieved_rps"] for r in runs if r["achieved_rps"]]),
        "send_lag_p99_ms": summarize([r["send_lag_p99_ms"] for r in runs]),
        "generator_cores": summarize([r["generator_cores"] for r in runs]),
        "connections": summarize([r["connections"] for r in runs]),
        "errors": dict(errors),
        "runs": runs,
    }


def _log_exceptions(lines: list[str]) -> tuple[Counter[str], list[str]]:
    """(exception name -> count) of the tracebacks, and the other warning lines."""
    found: Counter[str] = Counter()
    others: list[str] = []
    in_traceback = False
    for line in lines:
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and not line.startswith((" ", "\t")):
            found[line.split(":", 1)[0].strip()] += 1
            in_traceback = False
        elif not in_traceback and not line.startswith((" ", "\t")):
            others.append(line)
    return found, others


def _check(server: Server, parts: HttpParts) -> dict[str, Any]:
    """After the server stopped: its database and its log."""
    facts: dict[str, Any] = {"server": server.label}
    if server.db is not None:
        counts = server.db.counts()
        facts["db_counts"] = counts
        if counts.get("errors"):
            parts.webhook.problems.append(
                f"{server.label}: {counts['errors']} messages answered with an internal error"
            )
        if counts.get("unhandled"):
            parts.webhook.notes.append(
                f"{server.label}: {counts['unhandled']} stored messages never handled"
            )
    exceptions, others = _log_exceptions(server.log_problems())
    facts["log_exceptions"] = dict(exceptions)
    facts["log_other_lines"] = others[:20]
    for name, n in exceptions.items():
        (parts.webhook.notes if name in BENIGN else parts.webhook.problems).append(
            f"{server.label}: {n} x {name} in the server log ({server.log_path.name})"
        )
    return facts


def run_server(
    kind: str, db_kind: str | None, workers: int, cfg: HttpSettings, work: Path, parts: HttpParts
) -> None:
    db_context = database(db_kind, work) if db_kind else contextlib.nullcontext()
    with db_context as db:
        server = Server(kind, workers, work, db)
        pair: Server | None = None
        try:
            server.start()
            if kind == "citygate" and cfg.webhook:
                pair = _paired_ceiling(workers, work, db_kind, cfg)
            code, pin = server.create_case() if kind == "citygate" else CEILING_CASE
            best = 0.0
            if cfg.webhook:
                if kind == "citygate":
                    rate_guess = prime(server, code, pin, cfg.connections[0])
                else:
                    warm = run_wrk(
                        server.url,
                        webhook_bodies(CEILING_POOL, code, pin),
                        connections=cfg.connections[0],
                        seconds=cfg.warmup,
                        threads=cfg.threads,
                    )
                    rate_guess = warm.rps
                for connections in cfg.connections:
                    results, cores, splits, paired = _wrk_runs(
                        server, code, pin, connections, rate_guess, cfg, pair
                    )
                    row = _webhook_row(server, connections, results, cores, splits, paired)
                    busy = max(row["other_cpu_cores"]["runs"])
                    if busy > 0.25:
                        parts.webhook.notes.append(
                            f"{server.label} c={connections}: other processes used up to"
                            f" {busy:.2f} cores of the machine during a run"
                        )
                    uneven = [s for s in splits if len(s) > 1 and max(s) > 0.75 * sum(s)]
                    if uneven:
                        parts.webhook.notes.append(
                            f"{server.label} c={connections}: connections per worker {uneven}"
                            " in some runs: one process held over three quarters of the connections"
                        )
                    parts.webhook.rows.append(row)
                    best = max(best, row["rps"]["median"])
                    errors = row["non_2xx"] + row["socket_errors"]
                    if errors:
                        parts.webhook.problems.append(
                            f"{server.label} c={connections}: {row['non_2xx']} non-2xx,"
                            f" {row['socket_errors']} socket errors"
                        )
                    if row["wraps"] and kind == "citygate":
                        parts.webhook.notes.append(
                            f"{server.label} c={connections}: wrk ran out of distinct bodies"
                            f" {row['wraps']} times (repeats are answered from the store)"
                        )
            if kind == "citygate" and best > 0:
                row = _openloop(server, code, pin, best / 2, cfg)
                parts.fixed_rate.rows.append(row)
                if row["errors"]:
                    parts.fixed_rate.problems.append(f"{server.label}: errors {row['errors']}")
            if kind == "citygate" and db_kind and (db_kind, workers) in cfg.conversation_on:
                result = run_conversation(
                    server.url, cfg.conversation_concurrency, cfg.conversation_seconds, cfg.runs
                )
                print(
                    f"  {server.label} forms: {result['forms_per_s']['median']:.1f}/s"
                    f"  errors {result['errors']}",
                    flush=True,
                )
                parts.conversation.rows.append({"db": db_kind, "workers": workers, **result})
                if result["errors"]:
                    parts.conversation.problems.append(
                        f"{server.label}: {result['errors']} forms failed:"
                        f" {result['error_samples'][:2]}"
                    )
            tree = server.memory()
            parts.memory.rows.append(
                {
                    "target": kind,
                    "db": db_kind or "-",
                    "workers": workers,
                    "worker_peak_mb": worker_peak_mb(tree),
                    "processes": tree,
                }
            )
        finally:
            server.stop()
            if pair is not None:
                pair.stop()
        parts.servers.rows.append(_check(server, parts))


def _paired_ceiling(workers: int, work: Path, db_kind: str | None, cfg: HttpSettings) -> Server:
    """A ceiling with citygate's processes, idle beside it, run just before each of its
    runs: the host's speed drifts by more in the minutes between the ceiling's own rows
    and citygate's than a change of a few per cent moves a figure."""
    pair = Server("ceiling", workers, work)
    pair.log_path = work / f"ceiling-paired-{db_kind}-{workers}.log"
    pair.start()
    run_wrk(
        pair.url,
        webhook_bodies(CEILING_POOL, *CEILING_CASE),
        connections=cfg.connections[0],
        seconds=cfg.warmup,
        threads=cfg.threads,
    )
    return pair


def run_http(cfg: HttpSettings, work: Path) -> HttpParts:
    parts = HttpParts()
    started = time.monotonic()
    for kind, db_kind, workers in cfg.servers:
        print(f"bench: {kind} {db_kind or ''} workers={workers}", flush=True)
        try:
            run_server(kind, db_kind, workers, cfg, work, parts)
        except (BenchError, OSError, RuntimeError, ValueError) as exc:  # the next one may run
            label = f"{kind} {db_kind or '-'} x{workers}"
            parts.webhook.problems.append(f"{label} crashed: {type(exc).__name__}: {exc}")
            print(f"bench: {label} crashed: {exc}", flush=True)
    elapsed = time.monotonic() - started
    for part in (parts.webhook, parts.fixed_rate, parts.conversation, parts.memory, parts.servers):
        part.seconds = elapsed
    return parts
