"""Shared helpers of the benchmark parts: statistics, machine facts, processes, ports."""

from __future__ import annotations

import os
import platform
import pwd
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONFIG = ROOT / "config.yaml"
CORPORA = ROOT.parent / "shared" / "corpora"
PYTHON = sys.executable
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "twilio",
    "aiohttp",
    "aiosmtplib",
    "aioimaplib",
    "aiosmtpd",
    "rapidfuzz",
)


class BenchError(Exception):
    """A part could not run, or the gateway answered errors."""


@dataclass
class Part:
    """What one part found: rows for the table and the JSON file, and its problems."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0


def summarize(values: list[float]) -> dict[str, Any]:
    """Median, min and max of the runs (and the runs themselves)."""
    if not values:
        return {"median": None, "min": None, "max": None, "runs": []}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": [round(v, 4) for v in values],
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(pct / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command_output(args: list[str]) -> str:
    if shutil.which(args[0]) is None and not Path(args[0]).exists():
        return "not installed"
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)  # noqa: S603 - fixed version commands
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine() -> dict[str, Any]:
    """nproc, memory, CPU model, kernel, load average at the start."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_mb": round(mem_kb / 1024),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def git_commit() -> str:
    return _command_output(["git", "-C", str(ROOT), "rev-parse", "HEAD"])


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    wrk = _command_output(["wrk", "--version"])
    found["wrk"] = wrk.split(" [")[0] if wrk else "unknown"
    found["postgresql"] = _command_output(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version"]
    )
    found["dovecot"] = _command_output(["/usr/sbin/dovecot", "--version"])
    found["citygate_commit"] = git_commit()
    git = shutil.which("git") or "git"
    dirty = subprocess.run(  # noqa: S603 - git, fixed arguments
        [
            git,
            "-C",
            str(ROOT),
            "status",
            "--porcelain",
            "--",
            "gateway",
            "handlers",
            "models",
            "parsers",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    found["citygate_tree"] = "modified" if dirty else "clean"
    return found


# ------------------------------------------------------------------ processes


def _status_kb(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def memory_of_tree(pid: int) -> list[dict[str, Any]]:
    """VmHWM (peak RSS) and VmRSS of `pid` and every process below it, in MB."""
    rows = []
    for each in [pid, *descendants(pid)]:
        hwm, rss = _status_kb(each, "VmHWM"), _status_kb(each, "VmRSS")
        if hwm is None:
            continue
        line = cmdline(each)
        role = "supervisor" if each == pid else "worker"
        if "resource_tracker" in line or "semaphore_tracker" in line:
            role = "tracker"
        rows.append(
            {
                "pid": each,
                "role": role,
                "vmhwm_mb": round(hwm / 1024, 1),
                "vmrss_mb": round((rss or 0) / 1024, 1),
            }
        )
    return rows


def worker_peak_mb(tree: list[dict[str, Any]]) -> float | None:
    """The largest VmHWM among the processes that serve requests.

    With one worker uvicorn serves in its own process (the "supervisor" row is then
    the worker); with more, the supervisor only watches its worker children.
    """
    workers = [r["vmhwm_mb"] for r in tree if r["role"] == "worker"]
    if not workers:
        workers = [r["vmhwm_mb"] for r in tree if r["role"] == "supervisor"]
    return max(workers) if workers else None


def cpu_seconds(pids: list[int], reaped_children: bool = False) -> float:
    """User+system CPU seconds used so far by `pids` (with `reaped_children`, also by
    their children that have exited: PostgreSQL's short-lived backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if reaped_children:
            total += int(fields[13]) + int(fields[14])
    return total / tick


def _uid_of(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _pids_of_uid(uid: int | None) -> list[int]:
    if uid is None:
        return []
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with suppress(OSError):
            match = re.search(r"^Uid:\s+(\d+)", status.read_text(), re.MULTILINE)
            if match and int(match.group(1)) == uid:
                found.append(int(status.parent.name))
    return found


def _machine_busy_seconds() -> float:
    """CPU seconds all CPUs were busy since boot (steal included: the VM lost them)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores used during a run by the server, the load generator (children of this
    process, e.g. wrk), PostgreSQL, and everything else on the machine ("other": the
    noise of a shared machine)."""

    def __init__(self, server_pids: list[int]) -> None:
        self.server_pids = server_pids
        self.pg_uid = _uid_of("postgres")

    def _now(self) -> tuple[float, ...]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return (
            time.monotonic(),
            _machine_busy_seconds(),
            cpu_seconds(self.server_pids),
            children.ru_utime + children.ru_stime + me.ru_utime + me.ru_stime,
            cpu_seconds(_pids_of_uid(self.pg_uid), reaped_children=True),
        )

    def __enter__(self) -> CpuMeter:
        self.start = self._now()
        self.cores: dict[str, float] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        wall, busy, server, load, pg = (b - a for a, b in zip(self.start, end, strict=True))
        wall = max(wall, 1e-9)
        self.cores = {
            "server": server / wall,
            "load_generator": load / wall,
            "postgres": pg / wall,
            "other": max(0.0, busy - server - load - pg) / wall,
        }


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
