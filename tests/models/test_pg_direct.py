"""A group's writes and its keyword read (`models.inbox.write_deferred`,
`models.keywords.list_keyword_rows`) go around SQLAlchemy's execution: straight to
asyncpg on PostgreSQL (`models.pg_direct`), to the `sqlite3` connection's thread on
SQLite (`models.sqlite_direct`); the rows written are those SQLAlchemy would write."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import exc, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import pg_direct, sqlite_direct
from models.contacts import Contact, get_or_create_contact
from models.db import make_engine, make_sessionmaker
from models.inbox import (
    NewInbound,
    defer_writes,
    keep_limits,
    queue_mail_reply,
    record_reply,
    store_inbound_group,
    write_deferred,
)
from models.keywords import Keyword, list_keyword_rows
from models.messages import InboundMessage, OutboundMessage
from models.pg_direct import Direct

NOW = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def _sms(n: int) -> NewInbound:
    return NewInbound("sms", f"SM{n:032d}", f"+98912000{n:04d}", "+15005550006", "HELP", {})


@pytest.fixture
def direct(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement sent around SQLAlchemy, to asyncpg or to SQLite."""
    sent: list[str] = []

    def watching(original: Any) -> Any:
        async def send(connection: Any, sql: str, *args: Any, **kw: Any) -> list[Any]:
            sent.append(sql)
            return cast(list[Any], await original(connection, sql, *args, **kw))

        return send

    for module in (pg_direct, sqlite_direct):
        monkeypatch.setattr(module, "send", watching(module.send))
    return sent


async def test_a_groups_writes_land_whole(
    sessions: async_sessionmaker[AsyncSession], direct: list[str]
) -> None:
    async with sessions.begin() as session:
        defer_writes(session)
        stored = await store_inbound_group(session, [_sms(n) for n in range(3)])
        rows = [row for row, _new in stored]
        contacts = [
            await get_or_create_contact(session, channel="sms", address=row.from_address)
            for row in rows
        ]
        ids = [
            await record_reply(
                session,
                rows[0],
                contact_id=contacts[0].id,
                command="help",
                parts=["یک", "دو"],
                now=NOW,
            ),
            await record_reply(
                session,
                rows[1],
                contact_id=contacts[1].id,
                command=None,
                parts=[],
                now=NOW,
                outcome="refused: limit",
            ),
            await queue_mail_reply(
                session,
                rows[2],
                contact_id=contacts[2].id,
                to_address="a@example.org",
                body="پاسخ",
                message_id="<r1@citygate>",
                case_id=None,
                payload="raw",
                now=NOW,
            ),
        ]
        await keep_limits(session, contacts[0], allowance=2.5, allowance_at=NOW)
        await keep_limits(session, contacts[0], allowance=1.5, limited_at=NOW)
        assert ids == [[], [], []], "ids are known only once the group's rows are written"
        await write_deferred(session)
    # The inbound rows, the replies, the marks and the limits: four statements, none
    # through SQLAlchemy.
    tables = [re.match(r"(INSERT INTO|UPDATE) (\w+)", sql) for sql in direct]
    assert [(m[1], m[2]) if m else None for m in tables] == [
        ("INSERT INTO", "inbound_messages"),
        ("INSERT INTO", "outbound_messages"),
        ("UPDATE", "inbound_messages"),
        ("UPDATE", "contacts"),
    ], direct

    async with sessions() as session:
        out = await session.execute(select(OutboundMessage).order_by(OutboundMessage.id))
        replies = out.scalars().all()
        inbound = {m.id: m for m in (await session.execute(select(InboundMessage))).scalars().all()}
        contact = await session.get(Contact, contacts[0].id)
    assert [r.id for r in replies] == [*ids[0], *ids[2]]
    assert [(r.inbound_id, r.body) for r in replies] == [
        (rows[0].id, "یک"),
        (rows[0].id, "دو"),
        (rows[2].id, "پاسخ"),
    ]
    sms, mail = replies[0], replies[2]
    assert (sms.channel, sms.kind, sms.status, sms.attempts) == ("sms", "reply", "accepted", 0)
    assert sms.to_address == rows[0].from_address and sms.message_id is None
    assert sms.created_at is not None and sms.updated_at is not None
    assert (mail.status, mail.message_id, mail.payload) == ("pending", "<r1@citygate>", "raw")
    assert mail.next_attempt_at == NOW and mail.created_at == NOW
    first, second = inbound[rows[0].id], inbound[rows[1].id]
    assert (first.command, first.reply_text, first.handled_at) == ("help", "یک\n\nدو", NOW)
    assert first.contact_id == contacts[0].id and first.outcome == "handled"
    assert (second.command, second.reply_text, second.outcome) == (None, "", "refused: limit")
    assert inbound[rows[2].id].handled_at is None, "an email reply does not mark its row"
    assert contact is not None
    # the contact's last state wins, and the earlier change is not lost
    assert (contact.allowance, contact.allowance_at, contact.limited_at) == (1.5, NOW, NOW)
    assert contact.updated_at is not None and contact.updated_at > NOW - timedelta(days=1)


async def test_a_failed_write_keeps_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A reply the table refuses (no address: NOT NULL) fails the group's one INSERT of
    replies; the whole transaction is undone, and the next one works."""
    with pytest.raises(exc.IntegrityError if _sqlite(sessions) else Exception) as raised:
        async with sessions.begin() as session:
            defer_writes(session)
            ((row, _new),) = await store_inbound_group(session, [_sms(7)])
            contact = await get_or_create_contact(session, channel="sms", address="+989120")
            await record_reply(
                session, row, contact_id=contact.id, command="help", parts=["x"], now=NOW
            )
            await queue_mail_reply(
                session,
                row,
                contact_id=contact.id,
                to_address=None,  # type: ignore[arg-type]
                body="y",
                message_id="<r2@citygate>",
                case_id=None,
                payload="raw",
                now=NOW,
            )
            await write_deferred(session)
    assert "null" in str(raised.value).lower()
    async with sessions.begin() as session:
        assert (await session.execute(select(InboundMessage))).scalars().all() == []
        assert (await session.execute(select(OutboundMessage))).scalars().all() == []
        assert (await session.execute(select(Contact))).scalars().all() == []
        stored = await store_inbound_group(session, [_sms(8)])
    assert stored[0][1] is True


async def test_stored_rows_are_the_sessions_own(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A provider id already stored, or twice in one group, is new once; a row stored
    by the group is the session's object: a change to it (as the email channel makes)
    is written with the commit, and it reads back as stored."""
    async with sessions.begin() as session:
        await store_inbound_group(session, [_sms(1)])
    again = _sms(1)._replace(body="another body")
    async with sessions.begin() as session:
        stored = await store_inbound_group(session, [_sms(2), again, _sms(3), _sms(2)])
        assert [new for _row, new in stored] == [True, False, True, False]
        row = stored[0][0]
        assert stored[3][0] is row, "the same message twice in a group: one row"
        assert stored[1][0].body == "HELP", "a repeat delivery changes nothing stored"
        assert (row.attempts, row.handled_at, row.raw, row.error) == (1, None, {}, None)
        assert row in session and row.received_at is not None
        row.outcome = "ignored: bounce"
        raw = _sms(3)._replace(provider_id="SM-raw", raw={"Body": "سلام\u200cها", "n": ["1", "2"]})
        ((with_raw, _new),) = await store_inbound_group(session, [raw])
    async with sessions() as session:
        found = {
            m.provider_id: m
            for m in (await session.execute(select(InboundMessage))).scalars().all()
        }
    assert found[row.provider_id].outcome == "ignored: bounce"
    assert found["SM-raw"].raw == {"Body": "سلام\u200cها", "n": ["1", "2"]}
    assert found["SM-raw"].id == with_raw.id and len(found) == 4


async def test_a_too_long_value_is_never_cut(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A channel longer than its column (16): PostgreSQL refuses the group's INSERT, as
    it did through SQLAlchemy, instead of a cast cutting it to fit; SQLite, which does
    not enforce lengths, keeps it whole."""
    long = _sms(9)._replace(channel="s" * 17)
    if _sqlite(sessions):
        async with sessions.begin() as session:
            await store_inbound_group(session, [long])
    else:
        with pytest.raises(Exception, match="too long"):
            async with sessions.begin() as session:
                await store_inbound_group(session, [long])
    async with sessions() as session:
        kept = [m.channel for m in (await session.execute(select(InboundMessage))).scalars()]
    assert kept == (["s" * 17] if _sqlite(sessions) else [])


def _sqlite(sessions: async_sessionmaker[AsyncSession]) -> bool:
    return bool(sessions.kw["bind"].dialect.name == "sqlite")


async def test_keywords_read_before_and_inside_a_transaction(
    sessions: async_sessionmaker[AsyncSession], direct: list[str]
) -> None:
    async with sessions.begin() as session:
        session.add_all(
            [
                Keyword(command="status", language="fa", keyword="پیگیری", normal="پیگیری"),
                Keyword(command="help", language="en", keyword="INFO", normal="info"),
            ]
        )
    wanted = [("status", "fa", "پیگیری"), ("help", "en", "INFO")]
    async with sessions.begin() as session:
        # the first statement of the transaction (on PostgreSQL the direct read has the
        # adapter send BEGIN first; on SQLite a read opens none), then another
        assert await list_keyword_rows(session) == wanted
        assert await list_keyword_rows(session) == wanted
        session.add(Keyword(command="help", language="fa", keyword="کمک", normal="کمک"))
        await session.flush()
        assert await list_keyword_rows(session) == [*wanted, ("help", "fa", "کمک")]
    rolled_back = sessions.begin()
    with pytest.raises(RuntimeError):
        async with rolled_back as session:
            assert len(await list_keyword_rows(session)) == 3
            session.add(Keyword(command="help", language="en", keyword="SOS", normal="sos"))
            await session.flush()
            raise RuntimeError("undone")
    # the flushes are SQLAlchemy's; the reads inside a transaction went around it
    assert len([s for s in direct if s.startswith("SELECT keywords")]) == 4, direct
    async with sessions() as session:
        assert await list_keyword_rows(session) == [*wanted, ("help", "fa", "کمک")]


async def test_a_group_larger_than_one_statement(
    sessions: async_sessionmaker[AsyncSession], direct: list[str]
) -> None:
    """More rows than one of SQLite's multi-row INSERTs takes (`MOST_ROWS`): every one
    stored once, each reply matched to its own message."""
    count = sqlite_direct.MOST_ROWS + 20
    async with sessions.begin() as session:
        defer_writes(session)
        stored = await store_inbound_group(session, [_sms(n) for n in range(count)])
        contact = await get_or_create_contact(session, channel="sms", address="+98912")
        ids = [
            await record_reply(
                session,
                row,
                contact_id=contact.id,
                command="help",
                parts=[row.provider_id],
                now=NOW,
            )
            for row, _new in stored
        ]
        await write_deferred(session)
    assert all(new for _row, new in stored)
    async with sessions() as session:
        out = (await session.execute(select(OutboundMessage))).scalars().all()
        inbound = (await session.execute(select(InboundMessage))).scalars().all()
    assert len(inbound) == count and len(out) == count
    by_id = {r.id: r for r in out}
    for (row, _new), (reply_id,) in zip(stored, ids, strict=True):
        assert by_id[reply_id].inbound_id == row.id and by_id[reply_id].body == row.provider_id
    if _sqlite(sessions):
        assert len([s for s in direct if s.startswith("INSERT INTO inbound")]) == 2, direct


def test_a_column_default_is_refused_at_import() -> None:
    """A statement whose column defaults SQLAlchemy would fill in at execution cannot
    be run directly: it would write NULL instead."""
    statement = pg_insert(OutboundMessage).values(channel="sms", to_address="x", body="y")
    with pytest.raises(ValueError, match="bound parameters"):
        Direct(statement, ["channel", "to_address", "body"])
