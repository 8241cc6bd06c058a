"""One poller per mailbox: a lock that processes on one host or many agree on.

On PostgreSQL it is a session-level advisory lock (`pg_try_advisory_lock`) held on a
connection of its own, in autocommit (no transaction left open). PostgreSQL frees it
when that connection ends: at once when the holder's process dies (its socket closes),
and within `keepalive` seconds when its host vanishes (the server's TCP keepalives,
set on that connection, notice the silence). The holder checks its connection every
`heartbeat` seconds and stops polling the moment it cannot (the database restarted,
the network went): the lock may be someone else's by then. Others try every
`retry` seconds, so a dead holder's mailbox is polled again within about
`retry` (a killed process) or `keepalive + retry` (a lost host) seconds.

On SQLite (one host) it is an exclusive `flock` on a file beside the database, which
the kernel frees when the holder's process ends.

A message read by two pollers at once would still be handled once (the inbound
table's unique provider id): the lock keeps pollers from doing the work twice and
from filing one message into two folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from models.locks import advisory_unlock, keep_alive, ping, try_advisory_lock

log = logging.getLogger("citygate.poller")

# asyncpg: how long the heartbeat's query may take before the connection counts as lost.
_QUERY_TIMEOUT = 5.0


class MailboxLock(Protocol):
    """What the poller needs of a lock: take it, learn that it is lost, give it back."""

    lost: asyncio.Event

    async def acquire(self) -> bool: ...

    async def release(self) -> None: ...


def lock_key(mailbox: str) -> int:
    """The advisory lock's 64-bit key for a mailbox (`user@host/folder`), signed as
    PostgreSQL's bigint wants it."""
    digest = hashlib.sha256(f"citygate-poller:{mailbox}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class AdvisoryLock:
    """The PostgreSQL advisory lock of one mailbox (see the module's docstring)."""

    engine: AsyncEngine
    mailbox: str
    heartbeat: float = 5.0
    keepalive: int = 15
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    _conn: AsyncConnection | None = None
    _watch: asyncio.Task[None] | None = None

    async def acquire(self) -> bool:
        """Try once; True when this process now holds the mailbox."""
        conn = await self.engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            # The server notices a silent client within ~keepalive s and ends its session.
            interval = max(1, self.keepalive // 3)
            await keep_alive(conn, idle=interval, interval=interval, count=3)
            got = await try_advisory_lock(conn, lock_key(self.mailbox))
        except BaseException:
            await _close_quietly(conn)
            raise
        if not got:
            await _close_quietly(conn)
            return False
        self._conn = conn
        self.lost = asyncio.Event()
        self._watch = asyncio.create_task(self._beat(conn), name="poller-lock-heartbeat")
        return True

    async def _beat(self, conn: AsyncConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await asyncio.wait_for(ping(conn), _QUERY_TIMEOUT)
            except Exception as exc:
                log.warning("mailbox lock of %s lost (%s)", self.mailbox, type(exc).__name__)
                self.lost.set()
                return

    async def release(self) -> None:
        """Give the mailbox up (closing the connection frees the lock in any case)."""
        watch, conn = self._watch, self._conn
        self._watch = self._conn = None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(BaseException):
                await watch
        if conn is not None:
            if not self.lost.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        advisory_unlock(conn, lock_key(self.mailbox)), _QUERY_TIMEOUT
                    )
            await _close_quietly(conn)


async def _close_quietly(conn: AsyncConnection) -> None:
    try:
        await asyncio.wait_for(conn.close(), _QUERY_TIMEOUT)
    except Exception:
        # a broken connection: drop it without the pool's reset
        with contextlib.suppress(Exception):
            await conn.invalidate()


@dataclass
class FileLock:
    """An exclusive `flock` on `path`: one poller per mailbox among this host's processes."""

    path: Path
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    _fd: int | None = None

    async def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        self.lost = asyncio.Event()
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def mailbox_lock(engine: AsyncEngine, mailbox: str, data_dir: Path) -> MailboxLock:
    """The lock for `mailbox` on this engine's database: advisory on PostgreSQL, a file
    beside the database (or in `data_dir` for one in memory) on SQLite."""
    url = make_url(str(engine.url))
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(engine, mailbox)
    database = url.database
    folder = Path(database).resolve().parent if database and database != ":memory:" else data_dir
    name = hashlib.sha256(mailbox.encode()).hexdigest()[:16]
    return FileLock(folder / f".citygate-poller-{name}.lock")
