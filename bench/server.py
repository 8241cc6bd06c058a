"""The servers under test: `citygate serve` on a throw-away database, and the ceiling.

Both run under uvicorn with the same settings (`gateway.serving.run`: proxy_headers=True,
log_level "info", several workers each on a socket of its own; citygate writes its own
access log, the ceiling uvicorn's), on a free loopback port, in a new session so that
stopping them ends their workers too. A PostgreSQL run gets its own database
`citygate_bench_<pid>_<n>`, migrated with `citygate migrate` and dropped afterwards; a
SQLite run a file in a temporary folder.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    CONFIG,
    PYTHON,
    ROOT,
    BenchError,
    descendants,
    free_port,
    memory_of_tree,
    wait_for,
)
from bench.signing import AUTH_TOKEN, OPERATOR_TOKEN, PUBLIC_URL

PG_ADMIN = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
CITYGATE = Path(PYTHON).with_name("citygate")
START_TIMEOUT = 60.0
_numbers = count(1)
_databases: set[str] = set()  # dropped at exit if a run did not
_INFO = re.compile(r"INFO:|\d{4}-\d\d-\d\d [\d:,.]+ INFO ")  # uvicorn's and citygate's


def _psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run(  # noqa: S603 - psql, fixed arguments
        [*PG_ADMIN, "-d", database, "-tAc", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"psql failed: {sql}\n{done.stderr.strip()}")
    return done.stdout.strip()


def postgres_available() -> str | None:
    """None when PostgreSQL answers on 127.0.0.1:5432, else the reason it does not."""
    try:
        _psql("SELECT 1")
    except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
        return f"PostgreSQL on 127.0.0.1:5432 does not answer ({str(exc).splitlines()[0]})"
    return None


@atexit.register
def _drop_leftovers() -> None:
    for name in list(_databases):
        with suppress(Exception):
            _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_env(**extra: str) -> dict[str, str]:
    """The environment without any inherited citygate or Twilio setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITYGATE_", "TWILIO_"))}
    env.update(PYTHONPATH=str(ROOT), **UNREACHED_LIMITS, **extra)
    return env


# The load comes from a few hundred numbers at rates no citizen sends: the abuse limits
# (handlers.limits) are set so high that they never refuse, yet every message is still
# counted against them, so their cost is in the figures.
UNREACHED_LIMITS = {
    "CITYGATE_SMS_LIMIT_MESSAGES": "1000000000",
    "CITYGATE_MAIL_LIMIT_MESSAGES": "1000000000",
    "CITYGATE_LOOKUP_LIMIT_FAILURES": "1000000000",
}


@dataclass
class Database:
    kind: str  # sqlite or postgres
    url: str
    name: str | None = None  # PostgreSQL database
    path: Path | None = None  # SQLite file

    def counts(self) -> dict[str, int]:
        """Inbound messages stored, left unhandled, and answered with an error."""
        queries = {
            "inbound": "SELECT count(*) FROM inbound_messages",
            "unhandled": "SELECT count(*) FROM inbound_messages WHERE handled_at IS NULL",
            "errors": "SELECT count(*) FROM inbound_messages WHERE error IS NOT NULL",
            "cases": "SELECT count(*) FROM cases",
        }
        if self.kind == "postgres" and self.name:
            return {k: int(_psql(q, self.name) or 0) for k, q in queries.items()}
        if self.path is None:
            return {}
        with sqlite3.connect(self.path, timeout=30) as conn:
            return {k: int(conn.execute(q).fetchone()[0]) for k, q in queries.items()}


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[Database]:
    """A fresh, migrated database for one server (PostgreSQL: dropped afterwards)."""
    if kind == "sqlite":
        path = workdir / f"citygate-{next(_numbers)}.db"
        yield Database("sqlite", f"sqlite+aiosqlite:///{path}", path=path)
        return
    name = f"citygate_bench_{os.getpid()}_{next(_numbers)}"
    _psql(f'CREATE DATABASE "{name}"')
    _databases.add(name)
    try:
        db = Database("postgres", PG_URL.format(name=name), name=name)
        env = base_env(CITYGATE_CONFIG=str(CONFIG), CITYGATE_DATABASE_URL=db.url)
        done = subprocess.run(  # noqa: S603 - citygate migrate
            [str(CITYGATE), "migrate"], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"citygate migrate failed:\n{done.stdout}{done.stderr}")
        yield db
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _databases.discard(name)


class Server:
    """One server process tree: `citygate serve` (with a database) or the ceiling."""

    def __init__(self, kind: str, workers: int, workdir: Path, db: Database | None = None):
        self.kind = kind
        self.workers = workers
        self.db = db
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{kind}-{db.kind if db else 'bare'}-{workers}.log"

    @property
    def label(self) -> str:
        where = self.db.kind if self.db else "-"
        return f"{self.kind} {where} x{self.workers}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        common = ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        if self.kind == "citygate":
            return [str(CITYGATE), "serve", *common, "--no-poller", "--no-outbox"]
        return [PYTHON, "-m", "bench.ceiling", *common]

    def environment(self) -> dict[str, str]:
        env = base_env(
            CITYGATE_CONFIG=str(CONFIG),
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            CITYGATE_PUBLIC_URL=PUBLIC_URL,
            CITYGATE_OPERATOR_TOKENS=f"bench:{OPERATOR_TOKEN}",
            CITYGATE_DATA_DIR=str(self.workdir / "data"),
            CITYGATE_SECRET_KEY="bench-secret-key-0123456789abcdef",  # noqa: S106 - a throw-away key
        )
        if self.db is not None:
            env["CITYGATE_DATABASE_URL"] = self.db.url
        return env

    def start(self) -> None:
        self.port = free_port()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - the server under test
                self.command(),
                cwd=ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ready = "/readyz" if self.kind == "citygate" else "/healthz"

        def up() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise BenchError(f"{self.label} exited while starting:\n{self.log_tail()}")
            try:
                return httpx.get(self.url + ready, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, START_TIMEOUT, f"{self.label} to answer {ready}", 0.2)
        if self.workers > 1:
            wait_for(
                lambda: len(self.worker_pids()) >= self.workers,
                START_TIMEOUT,
                f"{self.workers} workers of {self.label}",
            )
            # every worker answers only once it has run its lifespan start
            for _ in range(20 * self.workers):
                httpx.get(self.url + ready, timeout=5)
        time.sleep(0.5)

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid]
        return [
            pid
            for pid in descendants(self.proc.pid)
            if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        ]

    def connection_split(self) -> list[int]:
        """Established client connections each worker holds right now (each worker
        listens on its own SO_REUSEPORT socket, `gateway.serving`; with one shared
        socket, whichever worker woke first accepted)."""
        established: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    port = int(fields[1].rsplit(":", 1)[1], 16)
                    if fields[3] == "01" and port == self.port:
                        established.add(fields[9])  # the socket's inode
        split = []
        for pid in self.worker_pids():
            held = 0
            with suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with suppress(OSError):
                        target = os.readlink(fd)
                        held += target.startswith("socket:[") and target[8:-1] in established
            split.append(held)
        return split

    def pids(self) -> list[int]:
        return [self.proc.pid, *descendants(self.proc.pid)] if self.proc else []

    def memory(self) -> list[dict[str, Any]]:
        return memory_of_tree(self.proc.pid) if self.proc else []

    def create_case(self) -> tuple[str, str]:
        """A case through the operator API, as a walk-in citizen's: (code, pin)."""
        response = httpx.post(
            self.url + "/api/v1/cases",
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            json={
                "service": "land_use_inquiry",
                "phone": "09121234567",
                "fields": {
                    "postal_code": "1435678911",
                    "district": "6",
                    "plate_number": "123/45",
                    "intended_use": "residential",
                },
            },
            timeout=30,
        )
        if response.status_code != 201:
            raise BenchError(f"POST /api/v1/cases: {response.status_code} {response.text}")
        data = response.json()
        return str(data["code"]), str(data["pin"])

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # a worker the supervisor left behind

    def log_tail(self, lines: int = 30) -> str:
        with suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def log_problems(self) -> list[str]:
        """Every log line that is not an INFO line (warnings, errors, tracebacks)."""
        with suppress(OSError):
            return [
                line
                for line in self.log_path.read_text(errors="replace").splitlines()
                if line.strip() and not _INFO.match(line)
            ]
        return []

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
