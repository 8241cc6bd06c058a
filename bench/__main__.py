"""`python -m bench`: run the benchmark parts, print the tables, write the results.

    python -m bench                 # everything, 3 runs of each figure (`make bench`)
    python -m bench --smoke         # each part once, briefly (`make bench-smoke`, < 60 s)
    python -m bench --parts parser,email --runs 5

Writes bench/results/<date>.json (<date>-smoke.json in smoke mode): the machine, the
versions, the settings, every run's figures, the checks and the targets. Exits 1 when
a part crashed or the gateway answered errors (non-2xx, socket errors, messages
answered with an internal error, exceptions in its log, forms or emails not answered);
never because a figure is slow.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import PYTHON, RESULTS, ROOT, Part, git_commit, machine, versions
from bench.mail import run_mail
from bench.report import render, targets
from bench.server import postgres_available
from bench.webhook import HttpSettings, run_http
from bench.wrk import ensure_wrk

PARTS = ("webhook", "conversation", "parser", "email")


def http_settings(smoke: bool, runs: int, seconds: float | None, pg: bool) -> HttpSettings:
    if smoke:
        return HttpSettings(
            servers=[("ceiling", None, 1), ("citygate", "sqlite", 1)],
            connections=(32,),
            seconds=seconds or 2.0,
            warmup=1.0,
            runs=runs,
            openloop_seconds=seconds or 2.0,
            conversation_on={("sqlite", 1)},
            conversation_seconds=seconds or 2.0,
            conversation_concurrency=8,
        )
    servers: list[tuple[str, str | None, int]] = [("ceiling", None, 1), ("ceiling", None, 2)]
    servers += [("citygate", "sqlite", 1), ("citygate", "sqlite", 2)]
    if pg:
        servers += [("citygate", "postgres", 1), ("citygate", "postgres", 2)]
    return HttpSettings(
        servers=servers,
        seconds=seconds or 10.0,
        runs=runs,
        openloop_seconds=seconds or 10.0,
        conversation_on={("sqlite", 1), ("postgres", 2)},
        conversation_seconds=seconds or 10.0,
    )


def run_parser(smoke: bool, runs: int) -> Part:
    part = Part("parser")
    args = [PYTHON, "-m", "bench.parser", "--runs", str(runs)]
    args += ["--limit", "300", "--min-seconds", "0"] if smoke else ["--min-seconds", "1.0"]
    started = time.monotonic()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603 - our own module
    if done.returncode != 0:
        raise RuntimeError(f"bench.parser failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    part.rows.append(row)
    part.seconds = time.monotonic() - started
    print(f"  parser: {row['msgs_per_s']['median']:,.0f} msgs/s", flush=True)
    return part


def _crashed(name: str, exc: BaseException) -> Part:
    part = Part(name)
    part.problems.append(f"crashed: {type(exc).__name__}: {exc}")
    part.notes.append("".join(traceback.format_exception(exc))[-4000:])
    return part


def output_path(smoke: bool, given: Path | None) -> Path:
    if given is not None:
        return given
    stem = datetime.date.today().isoformat() + ("-smoke" if smoke else "")
    path = RESULTS / f"{stem}.json"
    n = 2
    while path.exists() and not smoke:
        path, n = RESULTS / f"{stem}-{n}.json", n + 1
    return path


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that servers are stopped and databases dropped


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="each part once, briefly")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"some of {','.join(PARTS)}")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (3; smoke 1)")
    parser.add_argument("--seconds", type=float, default=None, help="length of each load run")
    parser.add_argument("--emails", type=int, default=None, help="mails per email run")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--output", type=Path, default=None, help="the results file")
    parser.add_argument("--keep", action="store_true", help="keep server logs and databases")
    args = parser.parse_args(argv)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; known: {', '.join(PARTS)}")
    runs = args.runs or (1 if args.smoke else 3)
    started = time.monotonic()
    skipped_pg = None if args.smoke or args.no_postgres else postgres_available()
    pg = not (args.smoke or args.no_postgres) and skipped_pg is None
    work = Path(tempfile.mkdtemp(prefix="citygate-bench-"))
    http = http_settings(args.smoke, runs, args.seconds, pg)
    http.webhook = "webhook" in wanted
    if "conversation" not in wanted:
        http.conversation_on = set()
    if not http.webhook:
        http.servers = [("citygate", db, w) for db, w in sorted(http.conversation_on)]
        http.servers = [s for s in http.servers if pg or s[1] != "postgres"]
    emails = args.emails or (5 if args.smoke else 200)
    mail_backends = ["sqlite", "postgres"] if pg else ["sqlite"]
    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "mode": "smoke" if args.smoke else "full",
        "machine": machine(),
        "versions": {},
        "settings": {
            "parts": wanted,
            "runs": runs,
            "http": {
                k: sorted(v) if isinstance(v, set) else v
                for k, v in dataclasses.asdict(http).items()
            },
            "emails": emails,
            "email_backends": mail_backends,
            "postgres": "used" if pg else (skipped_pg or "not used"),
        },
    }
    print(f"bench: {info['mode']} run, parts {', '.join(wanted)}; work folder {work}", flush=True)
    if skipped_pg:
        print(f"bench: PostgreSQL variants skipped: {skipped_pg}", flush=True)
    commit_at_start = git_commit()
    parts: dict[str, Part] = {}
    if http.servers and ("webhook" in wanted or "conversation" in wanted):
        try:
            ensure_wrk()
            got = run_http(http, work)
            chosen = {"webhook": got.webhook, "fixed_rate": got.fixed_rate}
            chosen |= {"memory": got.memory, "servers": got.servers}
            if not http.webhook:
                chosen = {"servers": got.servers}
            if http.conversation_on:
                chosen["conversation"] = got.conversation
            parts.update(chosen)
        except Exception as exc:
            parts["webhook"] = _crashed("webhook", exc)
    if "parser" in wanted:
        try:
            parts["parser"] = run_parser(args.smoke, runs)
        except Exception as exc:
            parts["parser"] = _crashed("parser", exc)
    if "email" in wanted:
        try:
            parts["email"] = run_mail(emails, runs, mail_backends, work)
        except Exception as exc:
            parts["email"] = _crashed("email", exc)
    info["versions"] = versions()
    info["versions"]["citygate_commit_at_start"] = commit_at_start
    if info["versions"]["citygate_commit"] != commit_at_start:
        print(f"bench: NOTE: the citygate commit changed during the run (from {commit_at_start})")
    found = targets(parts)
    problems = [p for part in parts.values() for p in part.problems]
    text = render(parts, found)
    total = time.monotonic() - started
    print("\n" + text)
    info |= {
        "parts": {name: dataclasses.asdict(part) for name, part in parts.items()},
        "targets": found,
        "problems": problems,
        "total_seconds": round(total, 1),
        "tables_markdown": text,
    }
    out = output_path(args.smoke, args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=1, ensure_ascii=False, default=str) + "\n")
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"bench: {total:.0f} s; results in {shown}")
    if problems or args.keep:
        print(f"bench: server logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        print(f"bench: {len(problems)} problem(s):", *problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
