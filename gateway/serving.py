"""Serving HTTP from several processes, each accepting on a listening socket of its own.

uvicorn's `--workers` binds one listening socket and shares it between its processes,
and whichever process is awake first accepts. A client that opens its connections at
once (a load balancer's or Twilio's keep-alive pool, a load generator) then finds most
of them held by one process while the other idles: in the bench one of two workers
took 63 of 64 connections (docs/BENCHMARKS.md). Here each worker binds its own socket
with `SO_REUSEPORT`, and the kernel hands each new connection to one of them by a hash
of its addresses, so connections are spread evenly.

Everything else is uvicorn's own supervisor (`uvicorn.supervisors.Multiprocess`: it
starts the workers, replaces one that dies, stops them all on SIGINT or SIGTERM); only
the socket it hands each worker differs. A `ReusePortSocket` pickled for a new worker
process becomes, in that process, a new socket bound with `SO_REUSEPORT` to the same
address. Before the workers start, the port is checked free with an ordinary bind, so
that a second gateway started on a port already served fails as before instead of
quietly sharing it (the kernel lets sockets of one user with `SO_REUSEPORT` share a
port).
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


def _listening_family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_reuseport(host: str, port: int) -> ReusePortSocket:
    """A socket bound to (host, port) with SO_REUSEPORT, to be listened on by its process."""
    sock = ReusePortSocket(host, port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class ReusePortSocket(socket.socket):
    """A socket that, pickled into another process, arrives as that process's own socket
    bound to the same address with SO_REUSEPORT (not a copy of this one)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(_listening_family(host), socket.SOCK_STREAM)
        self.address = (host, port)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, tuple[str, int]]:
        return bind_reuseport, self.address


def check_free(host: str, port: int) -> None:
    """Raise OSError (address in use) when something already listens on (host, port)."""
    with socket.socket(_listening_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def run(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Serve the ASGI app `app` ("module:attribute", a factory with `factory=True`) like
    `uvicorn.run`; with more than one worker, each on its own SO_REUSEPORT socket."""
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, **options)
        return
    config = uvicorn.Config(app, host=host, port=port, workers=workers, **options)
    try:
        check_free(host, port)
    except OSError as exc:  # as uvicorn says it for one worker
        logging.getLogger("uvicorn.error").error(exc)
        sys.exit(1)
    placeholder = ReusePortSocket(host, port)  # what each worker's socket is made from
    try:
        Multiprocess(config, sockets=[placeholder]).run()
    finally:
        placeholder.close()
