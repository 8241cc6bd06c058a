"""Email senders read ahead with their group (gateway/pipeline.py `_read_ahead`), through
the real poller against Dovecot and aiosmtpd, on SQLite and PostgreSQL: a form begun in
one mail and completed in the next, both in one chunk (one group, one transaction),
files one case for one new contact and is answered as if the mails came a poll apart."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from gateway.email_poller import poll_once
from gateway.outbox import deliver_due
from gateway.runtime import Runtime
from models.cases import Case
from models.contacts import Contact
from models.conversations import Conversation
from models.messages import InboundMessage, OutboundMessage
from parsers import tracking
from tests.gateway.test_email import code_of, cycle, mail
from tests.gateway.test_email import runtime as runtime  # the fixture
from tests.mailservers import Dovecot, SmtpCapture
from tests.support import statements

# The land-use form (service 6) in two halves: the first lacks the plate and the use.
BEGUN = "Service: 6\nPostal code: 1435678911\nDistrict: 6\n"
COMPLETED = "Registration plate: 12/5\nIntended use: Commercial\n"
REFERENCE = "one.poll.at.a.time@example.org"
KNOWN = "known.citizen@example.org"
NEW = "new.citizen@example.org"
HELPED = "asks.for.help@example.org"


def begun(sender: str) -> bytes:
    return mail(BEGUN, subject="Land use", sender=sender).as_bytes()


def completed(sender: str) -> bytes:
    return mail(COMPLETED, subject="Land use", sender=sender).as_bytes()


def plain(captured: Any) -> str:
    return str(captured.message.get_body(("plain",)).get_content())


def masked(text: str) -> str:
    """The reply with its tracking code, PIN and reply token (new each time) replaced."""
    text = re.sub(r"\bcg\.[0-9a-f]+\.[0-9a-f]+", "<token>", text)
    text = re.sub(
        r"\b\d{4} ?\d{4} ?\d{4}\b",
        lambda m: "<code>" if tracking.is_valid(m.group().replace(" ", "")) else m.group(),
        text,
    )
    return re.sub(r"(PIN: )\d{4}\b", r"\1<pin>", text)


def replies_to(smtp_capture: SmtpCapture, address: str) -> list[tuple[str, str]]:
    """(subject, text) of each reply sent to `address`, in the order sent."""
    return [
        (masked(str(m.message["Subject"])), masked(plain(m)))
        for m in smtp_capture.messages
        if m.rcpt_tos == [address]
    ]


async def contacts_at(runtime: Runtime, address: str) -> list[Contact]:
    async with runtime.sessions() as session:
        stmt = select(Contact).where(Contact.channel == "email", Contact.address == address)
        return list((await session.execute(stmt)).scalars())


async def cases_of(runtime: Runtime, contact_id: int) -> list[Case]:
    async with runtime.sessions() as session:
        stmt = select(Case).where(Case.contact_id == contact_id)
        return list((await session.execute(stmt)).unique().scalars())


async def test_a_form_begun_and_completed_in_one_chunk_files_one_case(
    runtime: Runtime, dovecot: Dovecot, smtp_capture: SmtpCapture
) -> None:
    # The reference: the two halves a poll apart, as tests/gateway/test_email.py sends them.
    # KNOWN has written before (the group reads its contact, with no form open, ahead).
    await dovecot.append(begun(REFERENCE))
    await dovecot.append(mail("HELP", subject="HELP", sender=KNOWN).as_bytes())
    await cycle(runtime)
    await dovecot.append(completed(REFERENCE))
    await cycle(runtime)
    expected = replies_to(smtp_capture, REFERENCE)
    assert len(expected) == 2
    assert "not filed yet" in expected[0][1] and "Registration plate" in expected[0][1]
    assert "Tracking code: <code>" in expected[1][1] and "PIN: <pin>" in expected[1][1]
    assert expected[1][0] == "Re: Land use [CG-<code>]"
    helped = replies_to(smtp_capture, KNOWN)
    assert len(helped) == 1
    [known] = await contacts_at(runtime, KNOWN)

    for raw in (begun(NEW), begun(KNOWN), completed(NEW)):
        await dovecot.append(raw)
    await dovecot.append(mail("HELP", subject="HELP", sender=HELPED).as_bytes())
    await dovecot.append(completed(KNOWN))
    group = runtime.inbound_group
    assert group is not None
    before, fallbacks = group.groups, group.fallbacks
    with statements(runtime.engine) as seen:
        result = await poll_once(runtime)
    assert (result.fetched, result.handled, result.failed, result.duplicates) == (5, 5, 0, 0)
    assert group.groups == before + 1, "the chunk's mails were not one group"
    assert group.fallbacks == fallbacks, "the group failed and its mails ran alone"
    delivery = await deliver_due(runtime)
    assert delivery.sent == 5

    assert replies_to(smtp_capture, NEW) == expected
    assert replies_to(smtp_capture, KNOWN) == helped + expected
    assert replies_to(smtp_capture, HELPED) == helped
    [new] = await contacts_at(runtime, NEW)
    [helper] = await contacts_at(runtime, HELPED)
    assert [c.id for c in await contacts_at(runtime, KNOWN)] == [known.id]
    assert len({known.id, new.id, helper.id}) == 3
    async with runtime.sessions() as session:
        total = len((await session.execute(select(Contact))).scalars().all())
        inbound = (await session.execute(select(InboundMessage))).scalars().all()
        stmt = select(OutboundMessage).order_by(OutboundMessage.id)
        outbound = (await session.execute(stmt)).scalars().all()
        forms = (await session.execute(select(Conversation))).scalars().all()
    assert total == 4, "a sender got a second contact"
    assert forms == [], "a completed form was left open"
    for contact in (new, known):
        [case] = await cases_of(runtime, contact.id)
        assert case.channel == "email" and case.service == "land_use_inquiry"
        assert case.fields["postal_code"] == "1435678911"
        assert case.fields["plate_number"] == "12/5"
        assert case.fields["intended_use"] == "commercial"
        latest = [o for o in outbound if o.to_address == contact.address][-1]
        assert code_of(latest.body) == case.code and latest.case_id == case.id
        mine = [m for m in inbound if m.from_address == contact.address]
        assert len(mine) == (3 if contact is known else 2)
        assert {m.contact_id for m in mine} == {contact.id}
        assert [m.case_id for m in mine if m.case_id is not None] == [case.id]
    assert await cases_of(runtime, helper.id) == []
    assert {m.contact_id for m in inbound if m.from_address == HELPED} == {helper.id}

    # The group read every sender (the email senders too) with its open form in one
    # statement, and made each new contact with one INSERT, looked up no more after it.
    reads = [s for s in seen if re.match(r"\s*SELECT\b.*\bFROM contacts\b", s, re.S)]
    assert len(reads) == 1, "a sender's contact was looked up again after the group read"
    assert "JOIN conversations" in reads[0]
    inserts = [s for s in seen if re.match(r"\s*INSERT INTO contacts\b", s)]
    assert len(inserts) == 2, "a new contact was inserted more than once"
