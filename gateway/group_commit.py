"""Group commit: the messages a process receives at once share one transaction.

A commit costs the same for one message as for fifty (an fsync on SQLite, a WAL flush
and a round trip on PostgreSQL), and on SQLite two writers of one process only queue
behind each other in the busy handler. So every inbound message goes through one
`GroupCommit` per process: whoever arrives while a group is being written waits for
the next group; one task takes everything waiting (up to `max_size`), runs it in one
transaction and commits once. Each caller gets its answer only after that commit, so
no answer is ever given for a message that is not durable.

When a group fails (a handler raised, a deadlock, the database went away), nothing of
it is kept and each of its messages is run again alone by `run_one`, the careful
path that stores first and records a handler's failure; a message's error never costs
another message its answer. With no load a group is one message: nothing waits for a
timer.

Under steady load from many callers at once, the callers fall into cohorts: the
callers answered by one group send their next message while the next group runs, with
only those who came in the meantime, so groups alternate in size (3, 29, 3, 29 … under
32 connections; docs/BENCHMARKS.md, "Ninth step"), and the small group costs a whole
commit. So when the last round drew a crowd (its group and those who came while it ran,
`GATHER_FROM` or more) and fewer than three quarters of that crowd wait, the next group
waits up to `gather_s` for them to come back: a group of 1 under light load still
starts at once, and a group never waits longer than `gather_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.metrics import GROUPED, GROUPS

log = logging.getLogger("citygate.group_commit")
GATHERED, UNGATHERED = GROUPS.labels(gathered="true"), GROUPS.labels(gathered="false")

# The smallest number of callers a group waits to gather (three quarters of the last
# round's crowd); below it a group starts at once.
GATHER_FROM = 8

J = TypeVar("J")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[J, R]):
    job: J
    future: asyncio.Future[R]


class GroupCommit(Generic[J, R]):
    """Runs jobs in groups: `run_group` gets every job waiting and returns their results
    in order; `run_one` is the fallback for each job of a group that failed."""

    def __init__(
        self,
        run_group: Callable[[Sequence[J]], Awaitable[Sequence[R]]],
        run_one: Callable[[J], Awaitable[R]],
        *,
        max_size: int = 64,
        gather_s: float = 0.0,
    ) -> None:
        self._run_group = run_group
        self._run_one = run_one
        self.max_size = max(1, max_size)
        self.gather_s = max(0.0, gather_s)
        self._waiting: list[_Waiting[J, R]] = []
        self._task: asyncio.Task[None] | None = None
        self._crowd = 0  # the last round's group and those who came while it ran
        self._enough: asyncio.Future[None] | None = None  # set once `_want` are waiting
        self._want = 0
        self.groups = 0
        self.jobs = 0
        self.fallbacks = 0
        self.gathered = 0  # groups that waited for their crowd

    async def submit(self, job: J) -> R:
        """The job's result, once the group it ran in is committed."""
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            # The loop the last group ran on is gone (tests run one loop per test).
            self._task, self._waiting, self._enough, self._crowd = None, [], None, 0
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append(_Waiting(job, future))
        enough = self._enough
        if enough is not None and len(self._waiting) >= self._want and not enough.done():
            enough.set_result(None)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        # A caller that goes away (a client hanging up) cancels only its wait: its job
        # still runs with its group, so the message is handled all the same.
        return await future

    async def close(self) -> None:
        """Let the group in flight, and those waiting, finish (before the engine closes)."""
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(task)

    async def _drain(self) -> None:
        group: list[_Waiting[J, R]] = []
        try:
            while self._waiting:
                want = min(self.max_size, self._crowd * 3 // 4)
                gathered = False
                if self.gather_s and want >= GATHER_FROM and len(self._waiting) < want:
                    await self._gather(want)
                    gathered = True
                group = self._waiting[: self.max_size]
                del self._waiting[: self.max_size]
                (GATHERED if gathered else UNGATHERED).inc()
                GROUPED.inc(len(group))
                await self._run(group)
                self._crowd = len(group) + len(self._waiting)
                group = []
        finally:
            # Only when this task is cancelled (shutdown) or a bug escaped `_run`: nobody
            # is left waiting for an answer that cannot come.
            for waiting in (*group, *self._waiting):
                if not waiting.future.done():
                    waiting.future.set_exception(RuntimeError("group commit stopped"))
            self._waiting.clear()

    async def _gather(self, want: int) -> None:
        """Until `want` jobs wait or `gather_s` has passed."""
        loop = asyncio.get_running_loop()
        enough: asyncio.Future[None] = loop.create_future()
        self._enough, self._want = enough, want
        timer = loop.call_later(self.gather_s, _settle, enough)
        try:
            await enough
        finally:
            timer.cancel()
            self._enough = None
        self.gathered += 1

    async def _run(self, group: list[_Waiting[J, R]]) -> None:
        self.groups += 1
        self.jobs += len(group)
        try:
            results = await self._run_group([w.job for w in group])
        except Exception as exc:  # each job again, alone: see the module docstring
            if len(group) > 1:
                log.warning(
                    "a group of %d messages failed (%s: %s); each is run alone",
                    len(group),
                    type(exc).__name__,
                    exc,
                )
            self.fallbacks += 1
            for waiting in group:
                await self._settle_alone(waiting)
            return
        for waiting, result in zip(group, results, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(result)

    async def _settle_alone(self, waiting: _Waiting[J, R]) -> None:
        try:
            result = await self._run_one(waiting.job)
        except Exception as exc:
            if not waiting.future.done():
                waiting.future.set_exception(exc)
            else:
                log.error("a message failed after its caller left", exc_info=exc)
        else:
            if not waiting.future.done():
                waiting.future.set_result(result)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
