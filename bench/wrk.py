"""Running Debian's `wrk` with bench/webhook.lua and reading what it measured.

`ensure_wrk()` installs the package with apt-get when it is missing (as root; the only
thing the suite ever installs). Each run prints wrk's own report, which is kept in
the results, and the one JSON line webhook.lua's done() writes, which is parsed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import BenchError
from bench.signing import PATH, Signed, write_lua

SCRIPT = Path(__file__).with_name("webhook.lua")


def ensure_wrk() -> str:
    """The path of `wrk`, installed with `apt-get install -y wrk` if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed and we are not root: apt-get install wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    print("bench: wrk missing; running apt-get install -y wrk", flush=True)
    done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)  # noqa: S603 - apt-get install wrk
    if done.returncode != 0:  # a fresh machine may not have the package lists yet
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)  # noqa: S607 - apt-get, fixed arguments
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)  # noqa: S603 - apt-get install wrk
    found = shutil.which("wrk")
    if not found:
        raise BenchError(f"apt-get install wrk failed:\n{done.stderr[-2000:]}")
    return found


@dataclass
class WrkResult:
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int  # wrk's "Non-2xx or 3xx responses" (status >= 400)
    socket_errors: int  # connect + read + write
    timeouts: int
    wraps: int  # times wrk ran out of distinct bodies and started over (repeats)
    output: str

    def as_dict(self, with_output: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_output:
            data.pop("output")
        return data


def run_wrk(
    url: str,
    bodies: list[Signed],
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> WrkResult:
    """`wrk -t THREADS -c CONNECTIONS -d SECONDS --latency` cycling through `bodies`."""
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="citygate-bench-wrk-") as tmp:
        table = Path(tmp) / "bodies.lua"
        write_lua(bodies, table)
        args = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s:g}s",
            "--latency",
            "-s",
            str(SCRIPT),
            url + PATH,
            "--",
            str(table),
            PATH,
            str(threads),
        ]
        try:
            done = subprocess.run(  # noqa: S603 - wrk, fixed arguments
                args, capture_output=True, text=True, timeout=seconds + 120, check=False
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not finish: {' '.join(args)}") from None
    output = done.stdout + done.stderr
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH-JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {done.returncode}):\n{output[-3000:]}")
    data = json.loads(line.removeprefix("BENCH-JSON "))
    duration = data["duration_us"] / 1e6
    return WrkResult(
        connections=connections,
        seconds=round(duration, 3),
        requests=data["requests"],
        rps=data["requests"] / duration if duration else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non_2xx=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"],
        timeouts=data["timeout"],
        wraps=data["wraps"],
        output="\n".join(ln for ln in output.splitlines() if not ln.startswith("BENCH-JSON")),
    )
