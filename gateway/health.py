"""Liveness, readiness and metrics: what a load balancer and Prometheus ask."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.twilio_sms import RuntimeDep
from models.db import schema_state

router = APIRouter(tags=["health"])
log = logging.getLogger("citygate.health")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the database answers and its migrations are the code's."""
    try:
        current, heads = await schema_state(runtime.engine)
    except Exception as exc:  # any driver error means not ready
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
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
async def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
