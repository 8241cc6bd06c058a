"""Instructions a message costs, counted by valgrind: a figure a shared machine cannot blur.

Not part of `make bench`. Throughput on this machine swings by a fifth from one minute to
the next (the host's other guests), which hides any change worth a few per cent; the
number of instructions the CPU executes for the same work does not swing (callgrind
counts them, whatever else the machine does). So a change to the message path is
judged here:

    .venv/bin/python -m bench.instructions [--http] [--db sqlite] [--concurrency 32]

runs `bench.pipeline` (one run, a fresh database) under `valgrind --tool=callgrind` with
`--small` and with `--large` messages, and prints (instructions of the large run − those
of the small one) / (large − small): start-up, imports and migrations cancel out. In
process, one event loop, so every group holds `concurrency` messages whatever the speed
under valgrind. About two minutes for the defaults (valgrind runs Python ~30× slower).
With `--http` each message is a signed webhook request handed to the app as uvicorn
hands it (the route, its middleware and FastAPI included; uvicorn's own parsing and
access log not). With `--email` each message is a mail of `bench.mail` (Dovecot, poll,
reply, SMTP; the two servers are not counted, and new PINs are hashed with one PBKDF2
round, a fixed cost left out), 64 and 192 mails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

_COLLECTED = re.compile(r"Collected : (\d+)")


def count(db: str, concurrency: int, messages: int, http: bool, email: bool = False) -> int:
    """Instructions of one `bench.pipeline` run of `messages` messages (with `email`,
    one `bench.mail` run of `messages` mails)."""
    if email:
        run = ["bench.mail", f"--emails={messages}", f"--db={db}", "--pin-iterations=1"]
    else:
        run = [
            "bench.pipeline",
            "--runs=1",
            f"--db={db}",
            f"--concurrency={concurrency}",
            f"--messages={messages}",
            *(["--http"] if http else []),
        ]
    with tempfile.TemporaryDirectory() as work:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={Path(work) / 'callgrind.out'}",
            sys.executable,
            "-m",
            *run,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts every run
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)  # noqa: S603
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--small", type=int, default=320)
    parser.add_argument("--large", type=int, default=1280)
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--email", action="store_true")
    args = parser.parse_args()
    if args.email and "--small" not in sys.argv:
        args.small, args.large = 64, 192  # mails: a 32-mail chunk each, ~3 minutes in all
    small = count(args.db, args.concurrency, args.small, args.http, args.email)
    large = count(args.db, args.concurrency, args.large, args.http, args.email)
    per = (large - small) / (args.large - args.small)
    where = "email" if args.email else "webhook (in process)" if args.http else "pipeline"
    print(
        f"{where}, {args.db}, c={args.concurrency}: {per / 1e6:.3f} M instructions a message "
        f"({small:,} for {args.small}, {large:,} for {args.large})"
    )


if __name__ == "__main__":
    main()
