"""Liveness, readiness and metrics: what a load balancer and Prometheus ask."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.metrics import OUTBOX_DEAD, OUTBOX_OLDEST, OUTBOX_WAITING
from gateway.twilio_sms import RuntimeDep
from models.db import known_revisions, schema_state
from models.messages import outbox_summary

router = APIRouter(tags=["health"])
log = logging.getLogger("citygate.health")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database answers and has this code's migrations (or newer ones);
    not ready while it is unreachable or behind the code."""
    try:
        current, heads = await schema_state(runtime.engine)
    except Exception as exc:  # any driver error means not ready
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    if current != heads and not current <= known_revisions():
        # A revision this code does not know: a newer release migrated the database
        # during a rolling upgrade. Migrations add before they remove (docs/OPERATIONS.md),
        # so this process keeps serving until it is replaced.
        return JSONResponse(
            {
                "status": "ok",
                "database": "ok",
                "migrations": sorted(current),
                "note": f"the database is newer than this code ({', '.join(sorted(heads))})",
            }
        )
    if current != heads:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": "ok",
                "migrations": {"applied": sorted(current), "expected": sorted(heads)},
            },
            503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "migrations": sorted(heads)})


@router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics: this process's counters, and the outbox's state read from the
    database (the same from every process; left as they were when it is unreachable)."""
    try:
        async with runtime.sessions() as session:
            summary = await asyncio.wait_for(outbox_summary(session), 5)
    except Exception as exc:
        log.warning("metrics: outbox state unavailable: %s", type(exc).__name__)
    else:
        now = runtime.clock()
        for channel in {"sms", "email"} | set(summary):
            waiting, oldest, dead = summary.get(channel, (0, None, 0))
            OUTBOX_WAITING.labels(channel=channel).set(waiting)
            age = (now - oldest).total_seconds() if oldest is not None else 0.0
            OUTBOX_OLDEST.labels(channel=channel).set(max(0.0, age))
            OUTBOX_DEAD.labels(channel=channel).set(dead)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
