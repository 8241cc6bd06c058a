"""Reports: cases by service, district, channel and status, the median days to close per
service, and the trips to an office the gateway saved citizens."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from fastapi import APIRouter

from gateway.api_common import OPERATOR_RESPONSES
from gateway.auth import Operator
from gateway.runtime import Runtime
from gateway.twilio_sms import RuntimeDep
from models.cases import FINAL_STATUSES, all_cases

router = APIRouter(prefix="/api/v1", tags=["reports"], responses=OPERATOR_RESPONSES)


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 1)


async def compute_stats(runtime: Runtime) -> dict[str, Any]:
    config = runtime.config
    async with runtime.sessions() as session:
        cases = await all_cases(session)
    by: dict[str, Counter[str]] = {
        k: Counter() for k in ("service", "district", "channel", "status")
    }
    days: dict[str, list[float]] = {}
    remote = 0
    for case in cases:
        by["service"][case.service] += 1
        by["district"][str(case.district) if case.district else "-"] += 1
        by["channel"][case.channel] += 1
        by["status"][case.status] += 1
        created = case.events[0] if case.events else None
        if created is not None and created.actor == "citizen":
            remote += 1
        closing = next(
            (e for e in case.events if e.kind == "status" and e.status_to in FINAL_STATUSES), None
        )
        if closing is not None:
            span = (closing.created_at - case.created_at).total_seconds() / 86400
            days.setdefault(case.service, []).append(span)
    return {
        "total": len(cases),
        "by_service": dict(by["service"].most_common()),
        "by_district": dict(by["district"].most_common()),
        "by_channel": dict(by["channel"].most_common()),
        "by_status": {s: by["status"].get(s, 0) for s in config.statuses},
        "median_days_to_close": {k: round(statistics.median(v), 2) for k, v in days.items()},
        "cases_without_a_visit": remote,
        "trips_per_case": config.reports.trips_per_case,
        "trips_saved": _whole(remote * config.reports.trips_per_case),
    }


@router.get("/stats")
async def stats(runtime: RuntimeDep, actor: Operator) -> dict[str, Any]:
    """Counts by service, district, channel and status; median days to close; trips saved
    (cases filed by citizens themselves, times `reports.trips_per_case`)."""
    return await compute_stats(runtime)
