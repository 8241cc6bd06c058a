"""A text message stored but never handled (its process died between the two commits of
the careful path) is handled after a restart, once, and answered by the outbox; on
SQLite and PostgreSQL, with Twilio's REST API stood in for on loopback.

The crash is made as it happens: the row is stored and committed exactly as
`gateway.pipeline._alone` stores it, and nothing else is done.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.outbox import deliver_due
from gateway.resume import STALE, resume_unhandled
from gateway.runtime import Runtime
from models.base import utcnow
from models.cases import Case
from models.inbox import NewInbound, store_inbound
from models.messages import InboundMessage, OutboundMessage
from tests.support import Twilio, make_settings, reply_messages, sms_params
from tests.twilio_standin import AUTH_TOKEN, TwilioStandIn

CITIZEN = "+989121234567"


@pytest.fixture
def settings(database_url: str, twilio_api: TwilioStandIn, tmp_path: Any):
    return make_settings(
        database_url,
        **twilio_api.settings(),
        twilio_auth_token=AUTH_TOKEN,
        data_dir=tmp_path,
        secret_key="resume-secret-key-0123456789",
    )


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def runtime(app: Any) -> Runtime:
    rt: Runtime = app.state.runtime
    rt.clock = Clock()
    return rt


async def crashed_after_storing(runtime: Runtime, params: dict[str, str]) -> int:
    """What a process leaves that dies right after committing the row: the row."""
    async with runtime.sessions.begin() as session:
        row, is_new = await store_inbound(
            session,
            NewInbound(
                "sms", params["MessageSid"], params["From"], params["To"], params["Body"], params
            ),
        )
    assert is_new
    return row.id


async def inbound(runtime: Runtime, inbound_id: int) -> InboundMessage:
    async with runtime.sessions() as session:
        row = await session.get(InboundMessage, inbound_id)
        assert row is not None
        return row


async def replies(runtime: Runtime, inbound_id: int) -> list[OutboundMessage]:
    async with runtime.sessions() as session:
        stmt = select(OutboundMessage).where(OutboundMessage.inbound_id == inbound_id)
        return list((await session.scalars(stmt.order_by(OutboundMessage.id))).all())


async def test_a_message_left_unhandled_is_answered_once_after_a_restart(
    runtime: Runtime, twilio: Twilio, twilio_api: TwilioStandIn
) -> None:
    params = sms_params("HELP", CITIZEN)
    inbound_id = await crashed_after_storing(runtime, params)

    # Younger than STALE: perhaps being handled right now by a live process. Left alone.
    assert await resume_unhandled(runtime) == 0
    runtime.clock.now += STALE + timedelta(seconds=1)  # type: ignore[attr-defined]
    assert await resume_unhandled(runtime) == 1
    assert await resume_unhandled(runtime) == 0  # handled once

    row = await inbound(runtime, inbound_id)
    assert row.handled_at is not None and row.error is None
    assert row.command == "help"
    assert row.outcome == "handled; answered after a restart"
    late = await replies(runtime, inbound_id)
    assert [(r.kind, r.status) for r in late] == [("late_reply", "pending")] * len(late)
    assert late and "\n\n".join(r.body for r in late) == row.reply_text

    await deliver_due(runtime)
    assert [m["To"] for m in twilio_api.sent] == [CITIZEN] * len(late)
    assert [m["Body"] for m in twilio_api.sent] == [r.body for r in late]

    # Twilio's retry of the webhook comes after all: the message is not handled again,
    # and the answer is empty (the citizen already has the reply, by the REST API).
    response = await twilio.post(params)
    assert response.status_code == 200
    assert reply_messages(response.text) == []
    assert len(await replies(runtime, inbound_id)) == len(late)
    assert (await inbound(runtime, inbound_id)).attempts == 2


async def test_twilio_retry_first_then_nothing_left_to_resume(
    runtime: Runtime, twilio: Twilio, twilio_api: TwilioStandIn
) -> None:
    params = sms_params("HELP", CITIZEN)
    inbound_id = await crashed_after_storing(runtime, params)
    response = await twilio.post(params)  # the retry, before any sweep
    assert reply_messages(response.text)  # answered inline this time
    runtime.clock.now += STALE * 2  # type: ignore[attr-defined]
    assert await resume_unhandled(runtime) == 0
    assert [r.kind for r in await replies(runtime, inbound_id)] == ["reply"] * len(
        reply_messages(response.text)
    )
    await deliver_due(runtime)
    assert twilio_api.sent == []


async def test_a_form_step_left_unhandled_files_its_case_once(
    runtime: Runtime, twilio: Twilio, twilio_api: TwilioStandIn
) -> None:
    """The effect of the message happens once too: the last step of a form, stored
    but not handled, files the case after the restart; the retry files nothing more."""
    for text in ("NEW 6", "1435678911", "6", "123/45", "1", "SKIP"):
        assert await twilio.messages(text, CITIZEN)
    last = sms_params("YES", CITIZEN)
    inbound_id = await crashed_after_storing(runtime, last)
    runtime.clock.now += STALE * 2  # type: ignore[attr-defined]
    assert await resume_unhandled(runtime) == 1
    await twilio.post(last)  # a late retry
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 1
        code = await session.scalar(select(Case.code))
    await deliver_due(runtime)
    told = "".join(m["Body"] for m in twilio_api.sent)
    assert code is not None and code[:4] in told.translate(
        str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")
    )
    assert (await inbound(runtime, inbound_id)).handled_at is not None


async def test_a_handler_failing_after_the_restart_is_recorded_and_apologised_for(
    runtime: Runtime, twilio_api: TwilioStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("the handler broke")

    monkeypatch.setattr("gateway.resume.handle_text", broken)
    inbound_id = await crashed_after_storing(runtime, sms_params("HELP", CITIZEN))
    runtime.clock.now += STALE * 2  # type: ignore[attr-defined]
    assert await resume_unhandled(runtime) == 1
    assert await resume_unhandled(runtime) == 0
    row = await inbound(runtime, inbound_id)
    assert row.handled_at is not None and row.error is not None
    apology = runtime.config.text("internal_error", runtime.config.default_language)
    assert [(r.kind, r.body) for r in await replies(runtime, inbound_id)] == [
        ("late_reply", apology)
    ]
    await deliver_due(runtime)
    assert [m["Body"] for m in twilio_api.sent] == [apology]
