"""`citygate serve --workers 2` (`gateway.serving`): each worker accepts on a socket of
its own, so connections opened at once are shared between the workers (with one shared
socket, one worker could take all of them); a port already served is refused as before."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from bench.common import descendants, free_port
from bench.server import CITYGATE
from tests.faults.processes import spawn
from tests.support import ROOT, as_environment

CONNECTIONS = 32


def _environment(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITYGATE_", "TWILIO_"))}
    env.update(
        as_environment(
            {
                "dev_mode": 1,
                "database_url": database_url,
                "data_dir": data_dir,
                "config": ROOT / "config.yaml",
            }
        )
    )
    return env


def _serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [str(CITYGATE), "serve", "--port", str(port), "--workers", "2"]
    return spawn([*command, "--no-poller", "--no-outbox"], env, log)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"the gateway did not start:\n{log.read_text()}")


@pytest.fixture
def two_workers(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    port, log = free_port(), tmp_path / "serve.log"
    proc = _serve(port, _environment(database_url, tmp_path / "data"), log)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc, log)
        # both workers up: each answers on its own socket once it has started
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield port, proc, log
    finally:
        _stop(proc)


def _held(pid: int, port: int) -> int:
    """Established connections to `port` that process `pid` holds."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                established.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with suppress(OSError):
            target = os.readlink(fd)
            held += target.startswith("socket:[") and target[8:-1] in established
    return held


def test_connections_opened_at_once_are_shared_by_the_workers(
    two_workers: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    port, proc, _log = two_workers
    workers = [
        p
        for p in descendants(proc.pid)
        if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()
    ]
    assert len(workers) == 2
    for _round in range(3):  # a shared socket's skew comes and goes: look three times
        split = _open_at_once(port, workers)
        assert sum(split) == CONNECTIONS
        # spread by a hash: the chance that one worker gets fewer than 4 of 32 is ~1e-6
        assert split[0] >= 4, split


def _open_at_once(port: int, workers: list[int]) -> list[int]:
    """Open CONNECTIONS connections at once, as a keep-alive pool or a load balancer
    opens them, make a request on each; how many each worker holds, fewest first."""
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        for client in clients:
            assert client.recv(4096).startswith(b"HTTP/1.1 200"), "no answer"
        return sorted(_held(pid, port) for pid in workers)
    finally:
        for client in clients:
            client.close()


def test_a_port_already_served_is_refused(
    two_workers: tuple[int, subprocess.Popen[bytes], Path], database_url: str, tmp_path: Path
) -> None:
    port, _proc, _log = two_workers
    log = tmp_path / "second.log"
    second = _serve(port, _environment(database_url, tmp_path / "data2"), log)
    try:
        assert second.wait(60) == 1
    finally:
        _stop(second)
    assert "Address already in use" in log.read_text()
    assert "Traceback" not in log.read_text()
