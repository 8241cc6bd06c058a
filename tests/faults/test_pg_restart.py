"""Fault: PostgreSQL goes down under load and comes back; the gateway recovers alone.

The database is a private cluster (the shared server on 5432 is never touched). Under
load it is stopped (`pg_ctl stop -m fast`: open connections are cut), left down for a
few seconds, and started again; the gateway is never restarted. While the database is
down /readyz must answer 503 promptly (not hang); after, it must answer 200 again by
itself, and the webhooks that failed meanwhile must all succeed on Twilio's retries:
every message stored once, answered once, its case filed once, nothing lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.faults.ledger import Figures, attempt_counts, report, sms_ledger
from tests.faults.loadgen import build_plan
from tests.faults.processes import Gateway, LoadGen, PrivatePostgres, migrate

CITIZENS = 30
PER_CITIZEN = 10
LOAD_SECONDS = 150.0
DOWN_SECONDS = 4.0  # the database stays down at least this long, under load
READYZ_TIMEOUT = 20.0  # /readyz must answer within this, database up or down
RECOVERY_TIMEOUT = 60.0  # /readyz must be 200 again this long after the database is


def _wait_readyz(gateway: Gateway, want: int, timeout: float) -> list[int | None]:
    """Poll /readyz until it answers `want`; every answer seen (None: no answer in
    READYZ_TIMEOUT, which fails the test: readiness must never hang)."""
    seen: list[int | None] = []
    deadline = time.monotonic() + timeout
    while True:
        status = gateway.readyz(timeout=READYZ_TIMEOUT)
        seen.append(status)
        assert status is not None, f"/readyz did not answer within {READYZ_TIMEOUT} s: {seen}"
        if status == want or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


async def test_database_restart_under_load_recovers_without_a_gateway_restart(
    private_postgres: PrivatePostgres, tmp_path: Path, fault_figures: Callable[[Figures], None]
) -> None:
    url = private_postgres.create_database("citygate")
    migrate(url)
    gateway = Gateway(tmp_path, url)
    load: LoadGen | None = None
    try:
        gateway.start()
        pid = gateway.proc.pid if gateway.proc else None
        code, pin = gateway.create_case()
        plan = build_plan(code=code, pin=pin, citizens=CITIZENS, per_citizen=PER_CITIZEN)
        load = LoadGen(gateway.url, plan, tmp_path, LOAD_SECONDS)
        assert load.wait_for_share(1 / 3), f"the load generator ended early:\n{load.log()}"
        stopped_at_done = load.done()
        down_at = time.time()
        private_postgres.stop("fast")
        while_down = _wait_readyz(gateway, 503, timeout=30)
        time.sleep(max(0.0, down_at + DOWN_SECONDS - time.time()))
        done_while_down = load.done()
        private_postgres.start()
        up_at = time.time()
        after = _wait_readyz(gateway, 200, timeout=RECOVERY_TIMEOUT)
        ready_at = time.time()
        still_same = gateway.running and gateway.proc is not None and gateway.proc.pid == pid
        results = load.finish(timeout=LOAD_SECONDS + 30)
    finally:
        if load is not None:
            load.close()
        gateway.close()

    assert while_down[-1] == 503, f"/readyz while the database was down: {while_down}"
    assert after[-1] == 200, f"/readyz never 200 again within {RECOVERY_TIMEOUT} s: {after}"
    assert still_same and gateway.starts == 1, "the gateway was restarted or died"
    figures, problems = await sms_ledger("postgresql restart under load", url, plan, results)
    outage = [
        outcome
        for r in results
        for at, outcome in r["attempts"]
        if down_at <= at <= ready_at and outcome != "200"
    ]
    server_errors = sum(1 for o in attempt_counts(results).elements() if o.startswith("5"))
    after_ready = [
        outcome
        for r in results
        for at, outcome in r["attempts"]
        if at > ready_at and outcome.startswith("5")
    ]
    figures.notes.update(
        {
            "5xx during the outage": sum(1 for o in outage if o.startswith("5")),
            "5xx in all": server_errors,
            "5xx after ready": len(after_ready),
            "other failures during the outage": sum(1 for o in outage if not o.startswith("5")),
            "seconds to ready after start": round(ready_at - up_at),
        }
    )
    fault_figures(figures)
    assert problems == [], report(problems)
    assert stopped_at_done < load.total and done_while_down < load.total, "load ended too soon"
    assert outage, "no request failed while the database was down: the fault hit no load"
    assert after_ready == [], "5xx after /readyz said the database was back"
    assert figures.sent == figures.accepted == figures.stored == figures.answered == load.total
    assert (figures.duplicated, figures.lost) == (0, 0)
