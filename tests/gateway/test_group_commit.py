"""Group commit: messages that arrive together share one transaction, on SQLite and
PostgreSQL, and still each get their own answer, exactly once, only once committed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.group_commit import GroupCommit
from gateway.pipeline import InboundText, Outcome, ReplyMessage, _handle, process
from gateway.runtime import Runtime
from handlers.base import Reply
from models.contacts import Contact
from models.messages import InboundMessage, OutboundMessage
from tests.support import Twilio, reply_messages, sms_params

HandleResult = tuple[Reply | None, tuple[ReplyMessage, ...], str | None]


def sender(n: int) -> str:
    return f"+98912{n:07d}"


def sms(provider_id: str, body: str, from_address: str) -> InboundText:
    return InboundText(
        channel="sms",
        provider_id=provider_id,
        from_address=from_address,
        body=body,
        to_address="+982100000000",
    )


async def inbound_rows(runtime: Runtime) -> list[InboundMessage]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(InboundMessage).order_by(InboundMessage.id))
        return list(rows.scalars().all())


async def replies_of(runtime: Runtime, inbound_id: int) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(OutboundMessage.body)
            .where(OutboundMessage.inbound_id == inbound_id)
            .order_by(OutboundMessage.id)
        )
        return list(rows.scalars().all())


async def test_concurrent_webhooks_share_commits_and_each_gets_its_own_reply(
    twilio: Twilio, app: Any
):
    runtime: Runtime = app.state.runtime
    expected = {
        "HELP": await twilio.messages("HELP", sender(999_001)),
        "PINEAPPLE": await twilio.messages("PINEAPPLE", sender(999_002)),
    }
    assert expected["HELP"] != expected["PINEAPPLE"]
    group = runtime.inbound_group
    groups_before, jobs_before = group.groups, group.jobs

    sent = [sms_params("HELP" if i % 2 else "PINEAPPLE", sender(i)) for i in range(40)]
    responses = await asyncio.gather(*(twilio.post(params) for params in sent))

    for params, response in zip(sent, responses, strict=True):
        assert response.status_code == 200, response.text
        assert reply_messages(response.text) == expected[params["Body"]], params["From"]
    rows = {row.provider_id: row for row in await inbound_rows(runtime)}
    assert len(rows) == 42
    for params in sent:
        row = rows[params["MessageSid"]]
        assert row.from_address == params["From"]
        assert row.handled_at is not None and row.error is None
        assert await replies_of(runtime, row.id) == expected[params["Body"]]
    assert group.jobs - jobs_before == 40
    assert group.groups - groups_before < 40, "every message had a transaction of its own"
    assert group.fallbacks == 0


async def test_a_failing_handler_costs_only_its_own_message(app: Any):
    runtime: Runtime = app.state.runtime

    async def handle(
        session: AsyncSession, rt: Runtime, row: InboundMessage, msg: InboundText
    ) -> HandleResult:
        if msg.body == "HELP BOOM":
            raise RuntimeError("a handler bug")
        return await _handle(session, rt, row, msg)

    bodies = ["HELP"] * 10
    bodies[4] = "HELP BOOM"
    messages = [sms(f"SMfail{i:02d}", body, sender(i)) for i, body in enumerate(bodies)]
    outcomes = await asyncio.gather(*(process(runtime, m, handle) for m in messages))

    internal_error = runtime.config.text("internal_error", runtime.config.default_language)
    normal = await process(runtime, sms("SMfail-ref", "HELP", sender(99)))
    assert normal.reply != internal_error
    for message, outcome in zip(messages, outcomes, strict=True):
        if message.body == "HELP BOOM":
            assert outcome.reply == internal_error
            assert outcome.reply_key == "internal_error"
        else:
            assert outcome.reply == normal.reply, message.provider_id
            assert outcome.reply_key == "help"
    rows = {row.provider_id: row for row in await inbound_rows(runtime)}
    assert len(rows) == len(messages) + 1
    for message, outcome in zip(messages, outcomes, strict=True):
        row = rows[message.provider_id]
        assert row.id == outcome.inbound_id
        assert row.handled_at is not None
        if message.body == "HELP BOOM":
            assert row.error
            assert row.reply_text == internal_error
            assert await replies_of(runtime, row.id) == []
        else:
            assert row.error is None
            assert await replies_of(runtime, row.id) == [normal.reply]
    assert runtime.inbound_group.fallbacks >= 1


async def test_one_message_sid_delivered_twice_at_once_is_handled_once(twilio: Twilio, app: Any):
    params = sms_params("LANG en", sender(7))
    first, second = await asyncio.gather(twilio.post(params), twilio.post(dict(params)))
    assert first.status_code == second.status_code == 200
    assert reply_messages(first.text) == ["Replies will now be in English."]
    assert first.text == second.text  # the same reply, the same status callback
    rows = await inbound_rows(app.state.runtime)
    assert [row.provider_id for row in rows] == [params["MessageSid"]]
    assert await replies_of(app.state.runtime, rows[0].id) == ["Replies will now be in English."]
    async with app.state.runtime.sessions() as session:
        outbound = await session.scalar(select(func.count()).select_from(OutboundMessage))
    assert outbound == 1


async def test_a_repeat_delivery_inside_the_same_group_replays_the_first_answer(app: Any):
    runtime: Runtime = app.state.runtime
    before = runtime.inbound_group.groups if runtime.inbound_group else 0
    message = sms("SMsamegroup", "HELP", sender(8))
    first, second = await asyncio.gather(process(runtime, message), process(runtime, message))
    assert runtime.inbound_group is not None
    assert runtime.inbound_group.groups == before + 1, "both deliveries in one group"
    assert not first.duplicate and second.duplicate
    assert [m.outbound_id for m in first.messages] == [m.outbound_id for m in second.messages]
    assert first.reply == second.reply
    rows = await inbound_rows(runtime)
    assert len(rows) == 1 and rows[0].attempts == 2
    assert await replies_of(runtime, rows[0].id) == [first.reply]


async def test_one_senders_messages_in_one_group_keep_their_order(app: Any):
    runtime: Runtime = app.state.runtime
    await process(runtime, sms("SMorder-warm", "HELP", sender(50)))
    group = runtime.inbound_group
    groups_before = group.groups
    a, b = sender(1), sender(2)
    # Interleaved senders; provider ids fall as they are sent, so no sort but by sender
    # (stable) keeps one sender's messages in the order they came.
    sequence = [(a, "STOP"), (b, "START"), (a, "START"), (b, "STOP"), (a, "LANG fa")]
    sequence += [(b, "LANG fa"), (b, "LANG en")]
    messages = [
        sms(f"SMorder{len(sequence) - i:02d}", body, who) for i, (who, body) in enumerate(sequence)
    ]
    outcomes = await asyncio.gather(*(process(runtime, m) for m in messages))

    assert group.groups - groups_before == 1, "the messages were not one group"
    keys = ["stop_ack", "start_ack", "start_ack", "stop_ack"] + ["lang_set"] * 3
    assert [o.reply_key for o in outcomes] == keys
    async with runtime.sessions() as session:
        contacts = {c.address: c for c in (await session.execute(select(Contact))).scalars()}
    assert contacts[a].opted_out is False  # STOP, then START
    assert contacts[b].opted_out is True  # START, then STOP
    assert contacts[a].language == "fa"
    assert contacts[b].language == "en"  # fa, then en
    assert outcomes[-1].reply == "Replies will now be in English."


async def test_the_answer_comes_only_after_the_commit(app: Any):
    runtime: Runtime = app.state.runtime
    seen_uncommitted: list[bool] = []

    async def handle(
        session: AsyncSession, rt: Runtime, row: InboundMessage, msg: InboundText
    ) -> HandleResult:
        result = await _handle(session, rt, row, msg)
        async with rt.sessions() as other:  # another connection sees only commits
            seen_uncommitted.append(await other.get(InboundMessage, row.id) is not None)
        return result

    async def send(n: int) -> tuple[Outcome, InboundMessage | None]:
        outcome = await process(runtime, sms(f"SMcommit{n}", "HELP", sender(n)), handle)
        async with runtime.sessions() as other:
            return outcome, await other.get(InboundMessage, outcome.inbound_id)

    answers = await asyncio.gather(*(send(n) for n in range(6)))

    assert seen_uncommitted and not any(seen_uncommitted), "the handler ran after a commit"
    for outcome, row in answers:
        assert row is not None, "answered before the message was committed"
        assert row.handled_at is not None
        assert row.reply_text == outcome.reply
        assert await replies_of(runtime, row.id) == [outcome.reply]


# GroupCommit alone, without a database.


async def test_groups_never_exceed_max_size_and_every_job_runs_once():
    sizes: list[int] = []
    ran: list[int] = []

    async def run_group(jobs: Sequence[int]) -> list[int]:
        sizes.append(len(jobs))
        await asyncio.sleep(0)
        ran.extend(jobs)
        return [j * 10 for j in jobs]

    async def run_one(job: int) -> int:
        raise AssertionError("no group failed")

    commit: GroupCommit[int, int] = GroupCommit(run_group, run_one, max_size=3)
    results = await asyncio.gather(*(commit.submit(j) for j in range(10)))

    assert results == [j * 10 for j in range(10)]
    assert sorted(ran) == list(range(10))
    assert sizes and max(sizes) <= 3 and sum(sizes) == 10
    assert len(sizes) >= 4
    assert (commit.groups, commit.jobs, commit.fallbacks) == (len(sizes), 10, 0)


async def test_a_waiter_that_leaves_does_not_stop_its_job():
    started, release = asyncio.Event(), asyncio.Event()
    done: list[int] = []

    async def run_group(jobs: Sequence[int]) -> list[int]:
        started.set()
        await release.wait()
        done.extend(jobs)
        return [j * 10 for j in jobs]

    async def run_one(job: int) -> int:
        raise AssertionError("no group failed")

    commit: GroupCommit[int, int] = GroupCommit(run_group, run_one)
    waiters = [asyncio.create_task(commit.submit(j)) for j in range(3)]
    await started.wait()
    waiters[0].cancel()  # the caller whose submit started the group hangs up
    await asyncio.sleep(0)
    release.set()

    assert await asyncio.gather(waiters[1], waiters[2]) == [10, 20]
    assert waiters[0].cancelled()
    assert done == [0, 1, 2]


async def test_a_failed_group_runs_each_job_alone_and_keeps_errors_apart():
    alone: list[int] = []

    async def run_group(jobs: Sequence[int]) -> list[int]:
        raise RuntimeError("deadlock")

    async def run_one(job: int) -> int:
        alone.append(job)
        if job == 2:
            raise ValueError("job 2 is broken")
        return job * 10

    commit: GroupCommit[int, int] = GroupCommit(run_group, run_one)
    results = await asyncio.gather(*(commit.submit(j) for j in range(5)), return_exceptions=True)

    assert sorted(alone) == [0, 1, 2, 3, 4]
    assert isinstance(results[2], ValueError)
    assert [r for i, r in enumerate(results) if i != 2] == [0, 10, 30, 40]
    assert commit.fallbacks == 1


async def test_stopping_mid_group_answers_every_waiter_and_close_waits_for_the_group():
    started, release = asyncio.Event(), asyncio.Event()

    async def run_group(jobs: Sequence[int]) -> list[int]:
        started.set()
        await release.wait()
        return list(jobs)

    async def run_one(job: int) -> int:
        return job

    commit: GroupCommit[int, int] = GroupCommit(run_group, run_one)
    waiters = [asyncio.create_task(commit.submit(j)) for j in range(3)]
    await started.wait()
    closing = asyncio.create_task(commit.close())
    await asyncio.sleep(0.01)
    assert not closing.done(), "close() returned while a group was still being written"
    release.set()
    await closing
    assert await asyncio.gather(*waiters) == [0, 1, 2]

    release.clear()
    started.clear()
    waiters = [asyncio.create_task(commit.submit(j)) for j in range(3)]
    await started.wait()
    assert commit._task is not None
    commit._task.cancel()  # shutdown mid-group: nobody may wait forever
    results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 2)
    assert all(isinstance(r, RuntimeError) for r in results)


async def _rounds(gather_s: float) -> tuple[list[int], GroupCommit[int, int]]:
    """32 callers at once, then the same callers back in two cohorts (3, then 29 a moment
    later), as a closed loop of clients splits; the sizes of the groups that ran."""
    sizes: list[int] = []

    async def run_group(jobs: Sequence[int]) -> list[int]:
        sizes.append(len(jobs))
        await asyncio.sleep(0.001)
        return list(jobs)

    async def run_one(job: int) -> int:
        raise AssertionError("no group failed")

    commit: GroupCommit[int, int] = GroupCommit(run_group, run_one, gather_s=gather_s)
    await asyncio.gather(*(commit.submit(j) for j in range(32)))

    async def later() -> list[int]:
        await asyncio.sleep(0.01)
        return await asyncio.gather(*(commit.submit(j) for j in range(3, 32)))

    first = [asyncio.create_task(commit.submit(j)) for j in range(3)]
    rest = asyncio.create_task(later())
    assert [*await asyncio.gather(*first), *await rest] == list(range(32))
    return sizes, commit


async def test_a_small_group_under_steady_load_waits_for_its_crowd():
    sizes, commit = await _rounds(gather_s=1.0)
    assert sizes == [32, 32]  # the 3 waited for the 29: one commit instead of two
    assert commit.gathered == 1

    sizes, commit = await _rounds(gather_s=0.0)  # gathering off: the cohorts stay apart
    assert sizes == [32, 3, 29] and commit.gathered == 0


async def test_a_group_waits_no_longer_than_gather_s_and_not_at_all_under_light_load():
    sizes: list[int] = []

    async def run_group(jobs: Sequence[int]) -> list[int]:
        sizes.append(len(jobs))
        return list(jobs)

    async def run_one(job: int) -> int:
        raise AssertionError("no group failed")

    commit: GroupCommit[int, int] = GroupCommit(run_group, run_one, gather_s=0.2)
    loop = asyncio.get_running_loop()
    for j in range(5):  # one caller at a time: never a crowd, never a wait
        assert await commit.submit(j) == j
    assert commit.gathered == 0
    await asyncio.gather(*(commit.submit(j) for j in range(20)))  # a crowd of 20 …
    started = loop.time()
    assert await commit.submit(99) == 99  # … that does not come back: one wait, bounded
    waited = loop.time() - started
    assert commit.gathered == 1 and 0.15 <= waited < 5
    assert await commit.submit(100) == 100  # the crowd is gone: no wait any more
    assert commit.gathered == 1
    assert sizes == [1, 1, 1, 1, 1, 20, 1, 1]


async def test_groups_and_their_gathering_are_counted_for_prometheus():
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        sample("citygate_message_groups_total", gathered="true"),
        sample("citygate_message_groups_total", gathered="false"),
        sample("citygate_grouped_messages_total"),
    )
    sizes, _commit = await _rounds(gather_s=1.0)  # a group of 32, then one that gathered
    after = (
        sample("citygate_message_groups_total", gathered="true"),
        sample("citygate_message_groups_total", gathered="false"),
        sample("citygate_grouped_messages_total"),
    )
    assert sizes == [32, 32]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 64]
