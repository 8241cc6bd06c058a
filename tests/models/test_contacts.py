"""Contact rows (models/contacts.py `get_or_create_contact`), on SQLite and PostgreSQL: a
new contact is made by INSERT … ON CONFLICT DO NOTHING RETURNING with its column
defaults; two transactions creating the same contact at the same moment end with one
row, the later one waiting for the first (PostgreSQL) and then looking the row up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.base import utcnow
from models.contacts import Contact, find_contact, get_or_create_contact
from models.conversations import read_senders
from models.db import make_engine, make_sessionmaker

ADDRESS = "new.citizen@example.org"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


# SQLite has one writer: two of its transactions never create a contact at the same time.
postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


async def rows_of(sessions: async_sessionmaker[AsyncSession], address: str) -> list[Contact]:
    async with sessions() as session:
        stmt = select(Contact).where(Contact.channel == "email", Contact.address == address)
        return list((await session.execute(stmt)).scalars())


async def locked_elsewhere(sessions: async_sessionmaker[AsyncSession], contact_id: int) -> bool:
    """Whether another transaction holds the contact's row lock (PostgreSQL)."""
    stmt = select(Contact).where(Contact.id == contact_id).with_for_update(nowait=True)
    try:
        async with sessions.begin() as session:
            await session.execute(stmt)
    except DBAPIError as exc:
        assert "could not obtain lock" in str(exc), exc
        return True
    return False


async def waiting_on_a_lock(sessions: async_sessionmaker[AsyncSession]) -> int:
    """How many backends of this database wait for a lock (PostgreSQL)."""
    async with sessions() as session:
        stmt = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(await session.scalar(stmt) or 0)


async def until_waiting(sessions: async_sessionmaker[AsyncSession], task: asyncio.Task) -> None:
    for _ in range(200):
        assert not task.done(), f"the second transaction did not wait: {task}"
        if await waiting_on_a_lock(sessions) == 1:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the second transaction never waited for the first's row")


async def test_a_new_contact_gets_its_column_defaults(sessions) -> None:
    before = utcnow()
    async with sessions.begin() as session:
        contact = await get_or_create_contact(session, channel="email", address=ADDRESS)
        assert contact.id is not None
        created = contact.id
        returned = (contact.opted_out, contact.bounces, contact.language)
        stamps = (contact.created_at, contact.updated_at)
        assert (contact.opted_out_at, contact.bounced_at) == (None, None)
        assert await find_contact(session, channel="email", address=ADDRESS) is contact
    after = utcnow()
    assert returned == (False, 0, None)
    for stamp in stamps:
        assert stamp is not None and before - timedelta(seconds=1) <= stamp <= after

    [fresh] = await rows_of(sessions, ADDRESS)
    assert fresh.id == created
    assert (fresh.channel, fresh.address) == ("email", ADDRESS)
    assert (fresh.opted_out, fresh.bounces, fresh.language) == (False, 0, None)
    assert (fresh.opted_out_at, fresh.bounced_at) == (None, None)
    assert fresh.created_at is not None and fresh.updated_at is not None
    assert abs(fresh.created_at - stamps[0]) < timedelta(milliseconds=1)
    assert before - timedelta(seconds=1) <= fresh.created_at <= after


@pytest.mark.parametrize("lock", [False, True])
async def test_a_second_transaction_gets_the_contact_the_first_created(
    sessions, lock: bool
) -> None:
    async with sessions.begin() as session:
        first = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=lock)
        first_id = first.id
    async with sessions.begin() as session:
        second = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=lock)
        assert second.id == first_id
        again = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=lock)
        assert again is second
    assert [c.id for c in await rows_of(sessions, ADDRESS)] == [first_id]
    async with sessions.begin() as session:  # another channel, same address: its own row
        sms = await get_or_create_contact(session, channel="sms", address=ADDRESS)
        assert sms.id != first_id


@postgres_only
@pytest.mark.parametrize("lock", [False, True])
async def test_two_transactions_creating_one_contact_at_once_make_one_row(
    sessions, lock: bool
) -> None:
    async def second() -> int:
        async with sessions.begin() as session:
            contact = await get_or_create_contact(
                session, channel="email", address=ADDRESS, lock=lock
            )
            return contact.id

    async with sessions.begin() as session:
        created = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=lock)
        first_id = created.id
        task = asyncio.create_task(second())
        await until_waiting(sessions, task)  # on the first's uncommitted index entry
        assert not task.done()
    assert await asyncio.wait_for(task, 10) == first_id
    assert [c.id for c in await rows_of(sessions, ADDRESS)] == [first_id]


@postgres_only
async def test_when_the_first_transaction_rolls_back_the_waiting_one_creates_the_contact(
    sessions,
) -> None:
    async def second() -> int:
        async with sessions.begin() as session:
            contact = await get_or_create_contact(
                session, channel="email", address=ADDRESS, lock=True
            )
            return contact.id

    async with sessions() as session:
        await session.begin()
        created = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=True)
        rolled_back = created.id
        task = asyncio.create_task(second())
        await until_waiting(sessions, task)
        await session.rollback()
    made = await asyncio.wait_for(task, 10)
    assert made != rolled_back
    assert [c.id for c in await rows_of(sessions, ADDRESS)] == [made]


async def test_a_contact_read_ahead_as_missing_but_created_since_is_looked_up(
    database_url: str, sessions
) -> None:
    """The group's read-ahead remembered the address as unknown; another transaction
    created and committed it before this one inserts: the insert does nothing, the
    remembered 'missing' is forgotten and the row read (and locked) from the table.
    (On SQLite too: the read-ahead's SELECT holds no snapshot, as no write began yet.)"""
    postgres = database_url.startswith("postgresql")
    async with sessions.begin() as session:
        assert await read_senders(session, channel="email", addresses=[ADDRESS]) == []
        assert await find_contact(session, channel="email", address=ADDRESS) is None
        async with sessions.begin() as other:
            theirs = (await get_or_create_contact(other, channel="email", address=ADDRESS)).id
        contact = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=True)
        assert contact.id == theirs
        if postgres:
            assert await locked_elsewhere(sessions, theirs), "looked up without its lock"
        found = await find_contact(session, channel="email", address=ADDRESS)
        assert found is not None and found.id == theirs
    assert [c.id for c in await rows_of(sessions, ADDRESS)] == [theirs]
    if postgres:
        assert not await locked_elsewhere(sessions, theirs)


@postgres_only
async def test_contacts_read_ahead_stay_locked_until_the_transaction_ends(sessions) -> None:
    """A group's senders are read with their rows locked, so another process's group
    with a message of the same sender waits instead of handling it alongside."""
    async with sessions.begin() as session:
        known = await get_or_create_contact(session, channel="email", address=ADDRESS)
        other = await get_or_create_contact(session, channel="email", address="x@example.org")
    async with sessions.begin() as session:
        found = await read_senders(
            session, channel="email", addresses=[ADDRESS, "unknown@example.org"]
        )
        assert [c.id for c in found] == [known.id]
        assert await locked_elsewhere(sessions, known.id)
        assert not await locked_elsewhere(sessions, other.id), "a sender not asked for"
        again = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=True)
        assert again is found[0]
    assert not await locked_elsewhere(sessions, known.id)


async def test_a_contact_read_ahead_as_missing_is_created_once_in_the_transaction(
    sessions,
) -> None:
    """Created after the read-ahead said 'unknown', the contact is what later look-ups
    in the same transaction answer: no second insert, no second row."""
    async with sessions.begin() as session:
        assert await read_senders(session, channel="email", addresses=[ADDRESS]) == []
        created = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=True)
        assert await find_contact(session, channel="email", address=ADDRESS) is created
        again = await get_or_create_contact(session, channel="email", address=ADDRESS, lock=True)
        assert again is created
    async with sessions() as session:
        total = await session.scalar(select(func.count()).select_from(Contact))
    assert total == 1


async def test_what_was_read_ahead_is_forgotten_when_the_transaction_ends(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A session used for a second transaction must not answer from the first one's
    read-ahead: the contact unknown then, created meanwhile, is found now."""
    async with sessions() as session:
        async with session.begin():
            await read_senders(session, channel="email", addresses=[ADDRESS])
            assert await find_contact(session, channel="email", address=ADDRESS) is None
        async with sessions.begin() as other:
            made = await get_or_create_contact(other, channel="email", address=ADDRESS)
        async with session.begin():
            found = await find_contact(session, channel="email", address=ADDRESS)
            assert found is not None and found.id == made.id
