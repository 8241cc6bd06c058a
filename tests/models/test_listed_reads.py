"""A group's reads of its senders and of the cases asked about bind their list as one
value (`models.base.ForEither`: an array on PostgreSQL, a JSON array on SQLite), so the
statement is the same whatever the group's size, and what it finds is what an IN list
would find, quotes and all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from models.cases import Case, find_case, read_cases
from models.contacts import get_or_create_contact
from models.conversations import read_senders
from models.db import make_engine, make_sessionmaker
from tests.support import statements

ADDRESSES = ["o'brien@example.org", 'say "hi"@example.org', "زهرا@example.org", "a,b@example.org"]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = make_engine(database_url)
    yield made
    await made.dispose()


async def test_one_statement_for_any_number_of_senders_and_codes(engine: AsyncEngine) -> None:
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as session:
        contacts = [
            await get_or_create_contact(session, channel="email", address=a) for a in ADDRESSES
        ]
        for n, contact in enumerate(contacts):
            session.add(
                Case(
                    code=f"1234567890{n:02d}",
                    pin_hash="x",
                    service="noise",
                    fields={},
                    contact_id=contact.id,
                    channel="email",
                )
            )
    seen: list[list[str]] = []
    for size in (1, 4):
        async with sessions.begin() as session:
            with statements(engine) as sql:
                asked = [*ADDRESSES[:size], "nobody@example.org"]
                found = await read_senders(session, channel="email", addresses=asked)
                codes = [f"1234567890{n:02d}" for n in range(size)] + ["999999999999"]
                await read_cases(session, codes=codes)
                got = [await find_case(session, code=c) for c in codes]
            assert sorted(c.address for c in found) == sorted(ADDRESSES[:size])
            assert [c.code if c else None for c in got] == [*codes[:size], None]
            assert all(
                c is not None and c.contact_id == contacts[i].id for i, c in enumerate(got[:size])
            )
            seen.append(sql)
    assert len(seen[0]) == 2 and seen[0] == seen[1]  # the same two statements, 2 or 5 long


async def test_no_code_asked_reads_nothing(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine).begin() as session:
        with statements(engine) as sql:
            await read_cases(session, codes=[])
        assert sql == []
        assert await read_senders(session, channel="sms", addresses=["+989120000001"]) == []
