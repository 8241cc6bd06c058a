"""A group reads ahead and writes behind (gateway/pipeline.py `_run_group`), on SQLite
and PostgreSQL: messages that arrive together get the answers they would get one after
the other, while the group reads contacts, conversations and cases in one statement
each and writes its replies in one INSERT, whatever its size."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from gateway.email_channel import handle_email
from gateway.pipeline import InboundText, Outcome, process
from gateway.runtime import Runtime
from models.cases import Case, create_case
from models.contacts import Contact, get_or_create_contact
from models.conversations import Conversation
from models.messages import InboundMessage, OutboundMessage
from parsers import tracking
from tests.support import Twilio, make_settings, sms_params, statements

DESK = "desk@city.example"
POSTAL = "1435678911"
_ids = iter(range(1, 10**9))


@pytest.fixture
async def runtime(database_url: str, city_config: Any, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = make_settings(database_url, mail_from=DESK, data_dir=tmp_path, secret_key="k" * 32)
    rt = Runtime.create(settings, city_config)
    yield rt
    await rt.close()


def sender(n: int) -> str:
    return f"+98912{n:07d}"


def sms(body: str, from_address: str) -> InboundText:
    return InboundText("sms", f"SMreads{next(_ids):06d}", from_address, body, "+982100000000")


async def one_by_one(runtime: Runtime, messages: list[InboundText]) -> list[Outcome]:
    return [await process(runtime, m) for m in messages]


async def together(runtime: Runtime, messages: list[Any]) -> list[Outcome]:
    """Send `messages` (InboundTexts, or coroutines of another edge) as one group."""
    if runtime.inbound_group is None:  # the group commit is made by a first message
        await process(runtime, sms("HELP", sender(9_999_999)))
    group = runtime.inbound_group
    assert group is not None
    before, fallbacks = group.groups, group.fallbacks
    jobs = [process(runtime, m) if isinstance(m, InboundText) else m for m in messages]
    outcomes = await asyncio.gather(*jobs)
    assert group.groups == before + 1, "the messages were not one group"
    assert group.fallbacks == fallbacks, "the group failed and its messages ran alone"
    return list(outcomes)


async def a_case(runtime: Runtime, channel: str, address: str) -> tuple[str, str]:
    """A land-use case of the contact (channel, address): (code, PIN)."""
    async with runtime.sessions.begin() as session:
        owner = await get_or_create_contact(session, channel=channel, address=address)
        case, pin = await create_case(
            session,
            service="land_use_inquiry",
            contact=owner,
            channel=channel,
            fields={
                "postal_code": POSTAL,
                "district": 6,
                "plate_number": "12",
                "intended_use": "residential",
            },
            district=6,
            actor="test",
            make_code=tracking.generate,
        )
    return case.code, pin


def another_code(*taken: str) -> str:
    code = tracking.generate()
    while code in taken:
        code = tracking.generate()
    return code


def said(outcomes: list[Outcome]) -> list[tuple[str | None, str]]:
    return [(o.reply_key, o.reply) for o in outcomes]


async def conversation_of(runtime: Runtime, address: str) -> Conversation | None:
    async with runtime.sessions() as session:
        stmt = select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
        return await session.scalar(stmt.where(Contact.address == address))


async def test_a_form_opened_and_answered_in_one_group_is_as_if_sent_one_by_one(
    runtime: Runtime,
) -> None:
    # A and R have written before (no form open); C and S have a form open; D is new.
    a, c, d, r, s = (sender(n) for n in (1, 2, 3, 11, 12))
    await one_by_one(runtime, [sms("HELP", a), sms("HELP", r), sms("NEW 6", c), sms("NEW 6", s)])
    opening = ["NEW 6", POSTAL, "6"]
    leaving = [POSTAL, "EXIT", POSTAL]
    expected_open = said(await one_by_one(runtime, [sms(b, r) for b in opening]))
    expected_leave = said(await one_by_one(runtime, [sms(b, s) for b in leaving]))
    assert [k for k, _ in expected_open] == ["question", "question", "question"]
    assert "(3/5)" in expected_open[-1][1]
    assert [k for k, _ in expected_leave][:2] == ["question", "exit_done"]

    outcomes = await together(
        runtime,
        [sms(b, a) for b in opening] + [sms(b, c) for b in leaving] + [sms(b, d) for b in opening],
    )

    assert said(outcomes[:3]) == expected_open, "the answer was not taken as the form's"
    assert said(outcomes[3:6]) == expected_leave, "the form closed by EXIT was answered"
    assert said(outcomes[6:]) == expected_open
    reference = await conversation_of(runtime, r)
    assert reference is not None
    for who in (a, d):
        form = await conversation_of(runtime, who)
        assert form is not None and form.step == reference.step == 2
        assert form.answers == reference.answers
    assert await conversation_of(runtime, c) is None


async def test_status_in_one_group_answers_owner_pin_holder_stranger_and_unknown(
    runtime: Runtime,
) -> None:
    owner, with_pin, wrong_pin, stranger = (sender(n) for n in (21, 22, 23, 24))
    code, pin = await a_case(runtime, "sms", owner)
    missing = another_code(code)
    wrong = "0000" if pin != "0000" else "1111"
    asked = [
        sms(f"STATUS {code}", owner),
        sms(f"STATUS {code} {pin}", with_pin),
        sms(f"STATUS {code} {wrong}", wrong_pin),
        sms(f"STATUS {code}", stranger),
        sms(f"STATUS {missing}", stranger),
        sms(f"STATUS {missing}", owner),
    ]
    await one_by_one(runtime, [sms("HELP", who) for who in (with_pin, wrong_pin, stranger)])

    outcomes = await together(runtime, asked)

    keys = [o.reply_key for o in outcomes]
    assert keys == ["status_reply", "status_reply"] + ["status_unknown"] * 4
    assert outcomes[0].reply == outcomes[1].reply
    assert "Land-use inquiry" in outcomes[0].reply
    shown, hidden = tracking.format_code(code), tracking.format_code(missing)
    for outcome in outcomes[2:4]:
        assert shown in outcome.reply and "Land-use" not in outcome.reply
    # A stranger learns nothing: a case not theirs reads as a code that does not exist.
    assert outcomes[3].reply == outcomes[4].reply.replace(hidden, shown)
    assert outcomes[4].reply == outcomes[5].reply
    alone = await one_by_one(runtime, [sms(m.body, m.from_address) for m in asked])
    assert said(alone) == said(outcomes)


def mail(body: str, subject: str, address: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = address, DESK, subject
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content(body)
    return message.as_bytes()


async def test_a_case_read_for_a_status_is_still_only_its_owners_by_email(runtime: Runtime) -> None:
    code, _pin = await a_case(runtime, "email", "owner@example.org")
    tag = f"Re: request [CG-{code}]"
    outcomes = await together(
        runtime,
        [
            sms(f"STATUS {code}", sender(31)),  # the group reads the case ahead
            handle_email(
                runtime, mail("from the owner", tag, "owner@example.org"), fallback_id="1"
            ),
            handle_email(
                runtime, mail("from a stranger", tag, "other@example.org"), fallback_id="2"
            ),
        ],
    )
    assert [o.reply_key for o in outcomes[:2]] == ["status_unknown", "email_added_to_case"]
    assert outcomes[2].reply_key != "email_added_to_case"
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case).where(Case.code == code))).unique().scalar_one()
        notes = [e.note for e in case.events if e.kind == "message"]
    assert notes == ["from the owner"], "a stranger's mail went into someone else's case"


async def test_new_senders_in_one_group_get_one_contact_each(runtime: Runtime) -> None:
    new = sender(41)
    others = [sender(50 + n) for n in range(12)]
    messages = [sms("HELP", new), sms("LANG fa", new), sms("HELP", new)]
    messages += [sms("HELP", who) for who in others]
    await process(runtime, sms("HELP", sender(9_999_999)))  # the group commit exists
    with statements(runtime.engine) as seen:
        outcomes = await together(runtime, messages)

    keys = [o.reply_key for o in outcomes]
    assert keys == ["help", "lang_set", "help"] + ["help"] * len(others)
    assert outcomes[0].reply != outcomes[2].reply, "LANG fa did not change the later reply"
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Contact))).scalars().all()
        inbound = (await session.execute(select(InboundMessage))).scalars().all()
    addresses = sorted(c.address for c in rows if c.address != sender(9_999_999))
    assert addresses == sorted([new, *others])
    by_address = {c.address: c for c in rows}
    assert by_address[new].language == "fa"
    owner_of = {m.provider_id: m.contact_id for m in inbound}
    for message in messages:
        assert owner_of[message.provider_id] == by_address[message.from_address].id
    reads = [s for s in seen if re.match(r"\s*SELECT\b.*\bFROM contacts\b", s, re.S)]
    assert len(reads) == 1, "a new sender was looked up again after the group read"


def callbacks(twiml: str) -> list[tuple[str, int]]:
    """(text, outbound id of its status callback) for each <Message> of the TwiML."""
    found = []
    for element in ET.fromstring(twiml).iter("Message"):
        query = parse_qs(urlsplit(element.attrib["action"]).query)
        found.append((element.text or "", int(query["outbound"][0])))
    return found


async def test_each_reply_message_names_its_own_outbound_row(twilio: Twilio, app: Any) -> None:
    runtime: Runtime = app.state.runtime
    in_form = [sender(60 + n) for n in range(12)]
    await asyncio.gather(*(twilio.sms("جدید ۶", who) for who in in_form))
    sent = [sms_params("راهنما", who) for who in in_form]  # help + the form reminder
    sent += [sms_params("HELP", sender(80 + n)) for n in range(12)]
    sent += [sms_params(f"STATUS {another_code()}", sender(80 + n)) for n in range(6)]
    group = runtime.inbound_group
    assert group is not None
    before = group.groups
    responses = await asyncio.gather(*(twilio.post(p) for p in sent))
    assert group.groups - before <= len(sent) // 2, "the webhooks did not share groups"

    async with runtime.sessions() as session:
        outbound = {o.id: o for o in (await session.execute(select(OutboundMessage))).scalars()}
        inbound = {
            m.provider_id: m for m in (await session.execute(select(InboundMessage))).scalars()
        }
    seen: set[int] = set()
    for params, response in zip(sent, responses, strict=True):
        assert response.status_code == 200, response.text
        messages = callbacks(response.text)
        assert len(messages) == (2 if params["Body"] == "راهنما" else 1)
        own = inbound[params["MessageSid"]]
        for text, outbound_id in messages:
            row = outbound[outbound_id]
            assert row.inbound_id == own.id, "a status callback names another webhook's reply"
            assert row.body == text and row.to_address == params["From"]
            seen.add(outbound_id)
        assert [t for t, _ in messages] == [
            o.body for o in sorted(outbound.values(), key=lambda o: o.id) if o.inbound_id == own.id
        ]
    assert len(seen) == sum(len(callbacks(r.text)) for r in responses)


async def test_statements_per_group_do_not_grow_with_the_group(runtime: Runtime) -> None:
    code, pin = await a_case(runtime, "sms", sender(100))
    missing = another_code(code)
    texts = ["HELP", f"STATUS {code}", f"STATUS {code} {pin}", f"STATUS {missing}"]
    senders = [sender(100 + n) for n in range(32)]  # the first is the case's owner
    await together(runtime, [sms("HELP", who) for who in senders])  # they are known now

    counts, expected = [], []
    for size in (8, 32):
        messages = [sms(texts[(n + 1) % 4], who) for n, who in enumerate(senders[:size])]
        with statements(runtime.engine) as seen:
            outcomes = await together(runtime, messages)
        counts.append(len(seen))
        expected.append([o.reply_key for o in outcomes])
    keys = ["status_reply", "status_reply", "status_unknown", "help"]
    assert expected[0][:4] == expected[1][:4] == keys
    assert expected[1][4:8] == ["status_unknown", *keys[1:]]  # a stranger without the PIN
    assert counts[0] == counts[1], f"statements per group grew with it: {counts}"
    # the inbound rows, keywords, contacts, conversations, cases and their events, the
    # replies, the handled marks: one statement each
    assert counts[0] <= 8, counts
