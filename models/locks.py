"""PostgreSQL's session-level advisory locks and per-connection settings, as statements
for `gateway.mailbox_lock` (which keeps the connection, its heartbeat and the lifecycle).

Each function runs on a connection the caller holds in autocommit: a session lock
belongs to the connection, not to a transaction.
"""

from __future__ import annotations

from sqlalchemy import false, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection


async def keep_alive(conn: AsyncConnection, *, idle: int, interval: int, count: int) -> None:
    """The server's TCP keepalives on this connection: a client gone silent (its host
    lost) is noticed after about `idle + interval * count` seconds, its session ended
    and its locks freed."""
    for name, value in (
        ("tcp_keepalives_idle", idle),
        ("tcp_keepalives_interval", interval),
        ("tcp_keepalives_count", count),
    ):
        await conn.execute(select(func.set_config(name, str(value), false())))


async def try_advisory_lock(conn: AsyncConnection, key: int) -> bool:
    """Take the session lock `key` if no other session holds it; whether it was taken."""
    return bool(await conn.scalar(select(func.pg_try_advisory_lock(key))))


async def advisory_unlock(conn: AsyncConnection, key: int) -> None:
    """Give the session lock `key` back (ending the connection frees it too)."""
    await conn.execute(select(func.pg_advisory_unlock(key)))


async def ping(conn: AsyncConnection) -> None:
    """One round trip: raises when the connection (and so the lock) is gone."""
    await conn.execute(select(literal(1)))
