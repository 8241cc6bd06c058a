"""Every real SMS in ../shared/corpora/sms goes through the whole webhook path.

Each is answered with 200 and a non-empty reply within the SMS budget, nothing raises,
and every message is stored exactly once.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from models.messages import InboundMessage
from parsers.segments import segments
from tests.support import Twilio, corpus, make_settings, reply_text, sms_params


@pytest.fixture
def settings(database_url):
    """One number sends the whole sweep, faster than any citizen: no abuse limits."""
    return make_settings(database_url, sms_limit_messages=0, lookup_limit_failures=0)


def corpus_messages() -> list[str]:
    english = corpus("sms", "uci-sms-spam-collection", "SMSSpamCollection")
    persian = corpus("sms", "persian-sms-dataset-semnan", "sms_open_subset.utf8.jsonl")
    texts = [
        line.split("\t", 1)[1]
        for line in english.read_text(encoding="utf-8", errors="replace").splitlines()
        if "\t" in line
    ]
    texts += [
        json.loads(line)["text"]
        for line in persian.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return texts


async def test_every_corpus_sms_is_answered(twilio: Twilio, app):
    messages = corpus_messages()
    assert len(messages) > 5000
    senders = [f"+98912{n:07d}" for n in range(50)]
    failures: list[str] = []
    for index, text in enumerate(messages):
        response = await twilio.post(sms_params(text, sender=senders[index % len(senders)]))
        reply = reply_text(response.text) if response.status_code == 200 else ""
        if response.status_code != 200 or not reply.strip() or segments(reply) > 2:
            failures.append(f"{index}: {response.status_code} {text[:40]!r} -> {reply[:60]!r}")
    assert not failures, "\n".join(failures[:20])
    async with app.state.runtime.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(InboundMessage))
        unanswered = await session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.handled_at.is_(None))
        )
        errors = await session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.error.is_not(None))
        )
    assert stored == len(messages)
    assert unanswered == 0
    assert errors == 0
