"""Where a webhook request's time goes: py-spy on `citygate serve` under wrk load.

Optional, not part of `make bench`; py-spy is not a dependency of the project:

    .venv/bin/pip install --target /tmp/py-spy py-spy
    .venv/bin/python -m bench.profile --py-spy /tmp/py-spy/bin/py-spy [--db postgres] --native

Starts `citygate serve` (one process) on a fresh database, sends one message from each
sender, then runs wrk (`--connections`, `--seconds`) while py-spy samples the process
and /proc counts each thread's CPU. Only the event loop's thread is kept from the
samples (the database driver's threads mostly wait), and with `--native` (C frames
too, recommended) the samples where it waits in epoll are left out. Prints the share
of the loop thread's samples per library (the innermost frame that belongs to one),
the innermost citygate function of each sample, and each thread's CPU. The folded
stacks are written to `--out` (flamegraph.pl input).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.server import Server, database
from bench.signing import webhook_bodies
from bench.webhook import prime
from bench.wrk import run_wrk

GROUPS = (
    ("PIN check (PBKDF2)", r"check_pin|pbkdf2"),
    ("logging", r"\(logging/"),
    ("aiosqlite hand-off", r"\(aiosqlite/"),
    ("asyncpg", r"\(asyncpg/"),
    ("SQLAlchemy", r"\(sqlalchemy/"),
    ("twilio (signature, TwiML)", r"\(twilio/"),
    ("xml.etree", r"\(xml/"),
    ("pydantic", r"\(pydantic"),
    ("phonenumbers", r"\(phonenumbers/"),
    ("citygate parsers", r"\(parsers/"),
    ("citygate handlers", r"\(handlers/"),
    ("citygate gateway, models", r"\((gateway|models)/"),
    ("uvicorn, httptools", r"\(uvicorn/|httptools"),
    ("starlette, fastapi", r"\((starlette|fastapi)/"),
    ("urllib", r"\(urllib/"),
    ("event loop", r"uvloop|\(asyncio/"),
)
IDLE = {"epoll_pwait", "epoll_wait", "epoll_pwait2"}
CITYGATE = re.compile(r"\((gateway|handlers|models|parsers)/")


def thread_cpu(pid: int) -> dict[int, float]:
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def summarize_stacks(path: Path) -> tuple[Counter[str], Counter[str], int]:
    groups: Counter[str] = Counter()
    inner: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # SQLAlchemy's greenlets run on the loop's thread only, but py-spy's native
        # unwinding stops at the greenlet's own stack: such a sample has no <module>.
        in_greenlet = "greenlet::" in stack
        if ("<module> (" not in stack and not in_greenlet) or "Thread._bootstrap" in stack:
            continue  # not the event loop's thread
        if stack.rsplit(";", 1)[-1].split(" (")[0] in IDLE:
            continue  # the loop waiting for I/O (seen with --native)
        n = int(count)
        total += n
        frames = stack.split(";")[::-1]
        for frame in frames:
            hit = next((name for name, pat in GROUPS if re.search(pat, frame)), None)
            if hit:
                groups[hit] += n
                break
        else:
            groups["other"] += n
        own = next((f for f in frames if CITYGATE.search(f)), None)
        if own:
            name, _, where = own.partition(" (")
            inner[f"{name} ({where.split(':')[0]})"] += n
    return groups, inner, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py-spy", required=True, help="path of the py-spy binary")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="also sample C frames")
    default_out = Path(tempfile.gettempdir()) / "citygate-webhook.folded"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="citygate-profile-"))
    with database(args.db, work) as db, Server("citygate", 1, work, db) as server:
        code, pin = server.create_case()
        rate = prime(server, code, pin, args.connections)
        bodies = webhook_bodies(max(2000, int(rate * args.seconds * 3)), code, pin)
        assert server.proc is not None
        pid = server.proc.pid
        record = ["record", "-p", str(pid), "-d", str(args.seconds), "-r", str(args.rate)]
        record += ["--native"] if args.native else []
        spy = subprocess.Popen(  # noqa: S603 - the py-spy binary the user named
            [args.py_spy, *record, "-f", "raw", "-o", str(args.out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before = thread_cpu(pid)
        result = run_wrk(server.url, bodies, connections=args.connections, seconds=args.seconds)
        after = thread_cpu(pid)
        spy.wait(timeout=60)
    groups, inner, total = summarize_stacks(args.out)
    print(f"{args.db}, c={args.connections}: {result.rps:.1f} req/s under py-spy")
    print(f"\nthread CPU over {result.seconds:.0f} s (seconds; the first is the event loop):")
    for tid, cpu in sorted(after.items(), key=lambda kv: kv[0] != pid):
        used = cpu - before.get(tid, 0.0)
        if used >= 0.05:
            print(f"  {tid}{' (loop)' if tid == pid else ''}: {used:.2f}")
    print(f"\nevent-loop thread, {total} samples, by library (innermost frame):")
    for name, n in groups.most_common():
        print(f"  {100 * n / total:5.1f} %  {name}")
    print("\ninnermost citygate function (what it spends its own and its libraries' time on):")
    for name, n in inner.most_common(15):
        print(f"  {100 * n / total:5.1f} %  {name}")
    print(f"\nfolded stacks: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
