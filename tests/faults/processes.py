"""The processes the fault suite starts, breaks and always stops again.

- `Gateway`: the real `citygate serve` (bench.server.Server's command and environment),
  which can be killed with SIGKILL, its whole process group, and started again on the
  port it had.
- `LoadGen`: `python -m tests.faults.loadgen` in a process of its own, followed through
  the result lines it writes.
- `PrivatePostgres`: a throw-away PostgreSQL cluster (initdb into a temporary folder,
  trust auth, 127.0.0.1 on a free port, fsync off) that a test may stop and start
  without touching the shared server on 5432. PostgreSQL refuses to run as root, so as
  root every pg_ctl and initdb runs as the `postgres` user (`runuser`).

Every class stops what it started in `close()`, which the fixtures call in their
teardown; what a crashed test run left behind is stopped at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx

from bench.common import PYTHON, ROOT, descendants, free_port
from bench.server import CITYGATE, Database, Server, base_env
from tests.support import ADMIN_TOKEN

START_TIMEOUT = 90.0  # a noisy shared machine: generous, and polled
PG_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
_open: set[Gateway | LoadGen | PrivatePostgres | Worker] = set()


@atexit.register
def _close_leftovers() -> None:
    for thing in list(_open):
        with suppress(Exception):
            thing.close()


def _kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the process group `proc` leads, and reap it."""
    if proc is None:
        return
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `command` in a process group of its own (so that it can be killed whole),
    from the repository, its output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def migrate(database_url: str, config: Path = ROOT / "config.yaml") -> None:
    """`citygate migrate` on `database_url`, as an operator runs it before `serve`."""
    env = base_env(CITYGATE_CONFIG=str(config), CITYGATE_DATABASE_URL=database_url)
    done = subprocess.run(
        [str(CITYGATE), "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"citygate migrate failed:\n{done.stdout}{done.stderr}")


class Gateway(Server):
    """One `citygate serve --no-poller --no-outbox` process on 127.0.0.1."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        super().__init__("citygate", 1, workdir, Database("postgres", database_url))
        self.starts = 0
        _open.add(self)

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "CITYGATE_ADMIN_TOKEN": ADMIN_TOKEN}

    def start(self) -> None:
        """Start serving, on the port of the last start if there was one; returns once
        /readyz answers 200."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the gateway is already running")
        self.port = self.port or free_port()
        self.proc = spawn(self.command(), self.environment(), self.log_path)
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while self.readyz(timeout=5) != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not get ready:\n{self.log_tail()}")
            time.sleep(0.2)

    def readyz(self, timeout: float) -> int | None:
        """GET /readyz's status, None when it did not answer within `timeout`."""
        try:
            return httpx.get(self.url + "/readyz", timeout=timeout).status_code
        except httpx.HTTPError:
            return None

    def kill9(self) -> None:
        """SIGKILL the gateway and everything it started (its process group)."""
        if self.proc is None:
            return
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        _kill_group(self.proc)
        for pid in pids:  # a worker that left the group: none should, but never leak one
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.kill9()
            _open.discard(self)


class LoadGen:
    """The load generator in its own process: started on a plan, followed, reaped."""

    def __init__(self, url: str, plan: dict[str, Any], workdir: Path, seconds: float) -> None:
        self.plan_path = workdir / "plan.json"
        self.out = workdir / "results.jsonl"
        self.log_path = workdir / "loadgen.log"
        self.total = sum(len(c["messages"]) for c in plan["citizens"])
        self.plan_path.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        self.out.write_text("")
        command = [
            PYTHON,
            "-m",
            "tests.faults.loadgen",
            f"--url={url}",
            f"--plan={self.plan_path}",
            f"--out={self.out}",
            f"--deadline={seconds}",
        ]
        self.proc: subprocess.Popen[bytes] | None = spawn(command, base_env(), self.log_path)
        _open.add(self)

    def done(self) -> int:
        """Messages finished so far (answered with a 200, or given up on)."""
        with self.out.open("rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))

    def wait_for_share(self, share: float, timeout: float = 120.0) -> bool:
        """Wait until `share` of the messages are done; False if the generator ended
        first (its citizens gave up: the results say why)."""
        deadline = time.monotonic() + timeout
        while self.done() < share * self.total:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.done()} of {self.total} messages after {timeout} s")
            time.sleep(0.05)
        return True

    def finish(self, timeout: float) -> list[dict[str, Any]]:
        """Wait for the generator to end; every message's result line."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the load generator ran past {timeout} s") from None
        if code != 0:
            raise RuntimeError(f"the load generator failed ({code}):\n{self.log()}")
        with self.out.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def log(self) -> str:
        with suppress(OSError):
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
        _open.discard(self)


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own, on 127.0.0.1:`port`."""

    def __init__(self) -> None:
        if not PG_BINARIES:
            raise FileNotFoundError("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
        self.bin = PG_BINARIES[-1].parent
        self.as_root = os.geteuid() == 0
        self.owner = pwd.getpwnam("postgres") if self.as_root else None
        self.root = Path(tempfile.mkdtemp(prefix="cg-faults-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        _open.add(self)
        self.root.chmod(0o755)  # tempfile makes it 0700; the owner below must get in
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed:\n{done.stdout}{done.stderr}\n{self.log_tail()}"
            )
        return done.stdout

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                "\n# tests/faults: a throw-away cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 60\nshared_buffers = 32MB\n"
            )

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new database in the cluster; its URL."""
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"')  # fmt: skip
        return self.url(name)

    def log_tail(self, lines: int = 20) -> str:
        with suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _postmaster(self) -> int | None:
        with suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def close(self) -> None:
        """Stop the cluster whatever state it is in, and delete it."""
        try:
            if self._postmaster() is not None:
                with suppress(Exception):
                    self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
                pid = self._postmaster()
                if pid is not None:  # pg_ctl could not stop it: it must not outlive the test
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _open.discard(self)


class Worker:
    """One `citygate serve --no-http` process (the poller, the outbox worker or both, as
    `parts` says: "poller", "outbox" or "both"), its log in a file of its own, its
    /metrics on a port of its own."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str], parts: str) -> None:
        flags = {"poller": ["--no-outbox"], "outbox": ["--no-poller"], "both": []}[parts]
        self.metrics_port = free_port()
        self.command = [
            str(CITYGATE), "serve", "--no-http", *flags, "--metrics-port", str(self.metrics_port)
        ]  # fmt: skip
        self.env = base_env(**env)
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        _open.add(self)

    def start(self) -> None:
        self.proc = spawn(self.command, self.env, self.log_path)

    def said(self, words: str) -> int:
        """How many lines of the log hold `words`."""
        with suppress(OSError):
            return sum(words in line for line in self.log_path.read_text().splitlines())
        return 0

    def log_tail(self, lines: int = 30) -> str:
        with suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def metric(self, series: str) -> float | None:
        """The value of `series` (name and labels, as Prometheus prints them) at the
        process's /metrics; None when it is not there or the process does not answer."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == series:
                return float(value)
        return None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the process and everything it started."""
        if self.proc is not None:
            pids = [self.proc.pid, *descendants(self.proc.pid)]
            _kill_group(self.proc)
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """SIGTERM (a clean stop, as at a deploy), SIGKILL if it does not end in 20 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        self.kill9()
        _open.discard(self)
