"""Two checkouts under the same webhook load, their wrk runs interleaved.

Not part of `make bench`. On this shared host a figure can move by half between two
hours and by a seventh within a minute, so two `make bench` runs cannot show whether a
change helped. Here both servers run at once, each on a fresh PostgreSQL database (or
SQLite file) with the bench's senders primed, and wrk alternates between them (ABBA
order); the median of each round's ratio is the figure:

    git worktree add /tmp/before <commit>
    .venv/bin/python -m bench.ab /tmp/before . [--db postgres] [--workers 2]

Each server imports its own checkout's code (PYTHONPATH); the bench's code, the
virtualenv and the load are this checkout's.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

from bench.server import Database, Server, database
from bench.signing import webhook_bodies
from bench.webhook import prime
from bench.wrk import run_wrk


class CheckoutServer(Server):
    """`citygate serve` running the code of another checkout."""

    def __init__(self, checkout: Path, workers: int, workdir: Path, db: Database) -> None:
        super().__init__("citygate", workers, workdir, db)
        self.checkout = checkout
        self.log_path = workdir / f"citygate-{checkout.name or 'checkout'}-{id(self)}.log"

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["PYTHONPATH"] = str(self.checkout)
        return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="the checkout to compare against")
    parser.add_argument("after", type=Path, help="the checkout with the change")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="citygate-bench-ab-"))
    names = ("before", "after")
    rps: dict[str, list[float]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        servers = {}
        for name in names:
            db = stack.enter_context(database(args.db, work))
            server = CheckoutServer(getattr(args, name).resolve(), args.workers, work, db)
            server.start()
            stack.callback(server.stop)
            code, pin = server.create_case()
            prime(server, code, pin, args.connections)
            servers[name] = (server, code, pin)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                server, code, pin = servers[name]
                bodies = webhook_bodies(max(20_000, int(8_000 * args.seconds)), code, pin)
                result = run_wrk(
                    server.url, bodies, connections=args.connections, seconds=args.seconds
                )
                rps[name].append(result.rps)
                errors = result.non_2xx + result.socket_errors
                print(f"round {round_ + 1} {name}: {result.rps:,.0f} req/s, errors {errors}")
    for name in names:
        runs = ", ".join(f"{r:,.0f}" for r in rps[name])
        print(f"{name}: median {statistics.median(rps[name]):,.0f} req/s ({runs})")
    ratios = [a / b for b, a in zip(rps["before"], rps["after"], strict=True)]
    listed = ", ".join(f"{r:.3f}" for r in sorted(ratios))
    print(f"after / before, median of the rounds: {statistics.median(ratios):.3f} ({listed})")


if __name__ == "__main__":
    main()
