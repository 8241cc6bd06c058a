"""Case rows: unique tracking codes (a collision is retried), hashed PINs, history."""

from __future__ import annotations

import time

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


async def test_a_verified_pin_is_remembered_and_a_wrong_one_never(monkeypatch):
    from models import cases

    stored = cases.hash_pin("4821")
    slow: list[str] = []
    real = cases.check_pin

    def counted(pin: str, hashed: str) -> bool:
        slow.append(pin)
        return real(pin, hashed)

    monkeypatch.setattr(cases, "check_pin", counted)
    monkeypatch.setattr(cases, "_VERIFIED", cases.OrderedDict())
    assert await cases.verify_pin("4821", stored)
    assert await cases.verify_pin("4821", stored)
    assert slow == ["4821"], "the second check of a right PIN must not hash again"
    assert not await cases.verify_pin("4822", stored)
    assert not await cases.verify_pin("4822", stored)
    assert slow == ["4821", "4822", "4822"], "every wrong guess pays the full hash"
    other = cases.hash_pin("4821")  # another case with the same PIN: its own salt
    assert await cases.verify_pin("4821", other)
    assert len(slow) == 4
    monkeypatch.setattr(cases, "VERIFIED_PINS_KEPT", 1)
    assert await cases.verify_pin("4821", cases.hash_pin("4821"))  # a third case
    assert len(cases._VERIFIED) == 1 and len(slow) == 5
    assert await cases.verify_pin("4821", stored)  # forgotten once the memory was full
    assert len(slow) == 6


def test_pins_made_ahead_are_each_handed_out_once_and_check() -> None:
    """The stock of PINs hashed ahead: every (PIN, hash) it gives checks, none is given
    twice (each hash has its own salt), it refills in its worker while nobody takes, and
    a forked child's stock starts empty."""
    from models import cases

    stock = cases.PinStock(size=4)
    taken = [stock.take() for _ in range(12)]  # more than it holds: some hashed on the spot
    assert all(cases.check_pin(pin, hashed) for pin, hashed in taken)
    assert len({hashed for _pin, hashed in taken}) == 12
    deadline = time.monotonic() + 30
    while len(stock._ready) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(stock._ready) == 4
    ahead = list(stock._ready)
    assert [stock.take() for _ in range(4)] == ahead  # handed out in turn, then gone
    stock.forget()
    assert not stock._ready
