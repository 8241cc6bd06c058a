"""Fault: the gateway is killed with SIGKILL under load, twice, and started again.

The real `citygate serve` runs on PostgreSQL; the load generator, in a process of its
own, sends signed webhooks (HELP, STATUS of an existing case, and the SMS form that
files a case) and retries each as Twilio does. At a third and at two thirds of the
load the gateway's process group gets SIGKILL, mid-request, and is started again on the
same port. Afterwards the database must hold every message once and its effect once:
nothing lost (every message got its 200 in the end), nothing answered or filed twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.faults.ledger import Figures, attempt_counts, report, sms_ledger
from tests.faults.loadgen import build_plan
from tests.faults.processes import Gateway, LoadGen, migrate

CITIZENS = 36  # a third file a case by the form (7 messages), the rest ask 10 questions
PER_CITIZEN = 10
LOAD_SECONDS = 150.0  # the load generator's own deadline for every retry
DOWN_SECONDS = 1.0  # how long the gateway stays dead before it is started again


async def test_kill9_under_load_loses_nothing_and_answers_nothing_twice(
    fresh_pg_url: str, tmp_path: Path, fault_figures: Callable[[Figures], None]
) -> None:
    migrate(fresh_pg_url)
    gateway = Gateway(tmp_path, fresh_pg_url)
    load: LoadGen | None = None
    try:
        gateway.start()
        code, pin = gateway.create_case()
        plan = build_plan(code=code, pin=pin, citizens=CITIZENS, per_citizen=PER_CITIZEN)
        load = LoadGen(gateway.url, plan, tmp_path, LOAD_SECONDS)
        killed_at = []
        for share in (1 / 3, 2 / 3):
            if not load.wait_for_share(share):
                break
            killed_at.append(load.done())
            gateway.kill9()
            time.sleep(DOWN_SECONDS)
            gateway.start()
        results = load.finish(timeout=LOAD_SECONDS + 30)
    finally:
        if load is not None:
            load.close()
        gateway.close()

    figures, problems = await sms_ledger("kill -9 under load", fresh_pg_url, plan, results)
    outcomes = attempt_counts(results)
    failed = sum(n for outcome, n in outcomes.items() if outcome != "200")
    figures.notes.update({"retried attempts": failed, "gateway starts": gateway.starts})
    fault_figures(figures)
    assert problems == [], report(problems)
    assert len(killed_at) == 2 and killed_at[-1] < load.total, "the load ended before a kill"
    assert failed > 0, f"no attempt failed: the kills hit no load ({outcomes})"
    assert figures.sent == figures.accepted == figures.stored == figures.answered == load.total
    assert (figures.duplicated, figures.lost) == (0, 0)
