"""Case rows: unique tracking codes (a collision is retried), hashed PINs, history."""

from __future__ import annotations

import pytest

from models.cases import change_status, check_pin, create_case, find_case
from models.contacts import get_or_create_contact
from models.db import make_engine, make_sessionmaker
from parsers import tracking


@pytest.fixture
async def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_code_collision_is_retried_and_pin_is_hashed(sessions):
    taken = tracking.generate()
    fresh = tracking.generate()
    while fresh == taken:
        fresh = tracking.generate()
    codes = iter([taken, taken, fresh])
    async with sessions.begin() as session:
        contact = await get_or_create_contact(session, channel="sms", address="+989121234567")
        first, _ = await create_case(
            session,
            service="land_use_inquiry",
            contact=contact,
            channel="sms",
            fields={},
            district=6,
            actor="test",
            make_code=lambda: taken,
        )
        second, pin = await create_case(
            session,
            service="land_use_inquiry",
            contact=contact,
            channel="sms",
            fields={},
            district=6,
            actor="test",
            make_code=lambda: next(codes),
        )
    assert first.code == taken
    assert second.code == fresh
    assert pin not in second.pin_hash
    assert check_pin(pin, second.pin_hash)
    assert not check_pin(f"{(int(pin) + 1) % 10000:04d}", second.pin_hash)


async def test_status_change_is_recorded_in_history(sessions):
    async with sessions.begin() as session:
        contact = await get_or_create_contact(session, channel="email", address="a@example.org")
        case, _ = await create_case(
            session,
            service="land_use_inquiry",
            contact=contact,
            channel="email",
            fields={"plate_number": "12"},
            district=None,
            actor="test",
            make_code=tracking.generate,
        )
        await change_status(session, case=case, status="in_review", note="n", actor="op")
    async with sessions() as session:
        loaded = await find_case(session, code=case.code)
    assert loaded is not None
    assert [e.kind for e in loaded.events] == ["created", "status"]
    assert loaded.events[1].status_from == "received"
    assert loaded.events[1].status_to == "in_review"
    assert loaded.events[1].actor == "op"
    assert loaded.fields == {"plate_number": "12"}
