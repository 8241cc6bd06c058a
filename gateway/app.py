"""`create_app(settings)`: the FastAPI application, built from its settings, nothing at import."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gateway import (
    admin,
    admin_pages,  # noqa: F401  (adds its pages to admin.router)
    api_cases,
    api_keywords,
    api_mail,
    api_outbox,
    health,
    stats,
    twilio_sms,
)
from gateway.access_log import AccessLog
from gateway.body_limit import BodyLimit
from gateway.metrics import ERRORS
from gateway.runtime import Runtime
from gateway.settings import CityConfig, ConfigError, Settings, load_settings

log = logging.getLogger("citygate")

DEV_MODE_BANNER = (
    "DEVELOPMENT MODE: TWILIO_AUTH_TOKEN is not set; unsigned webhooks are accepted "
    "from loopback only. Never run this way in production."
)


def check_startable(settings: Settings, *, http: bool = True) -> None:
    """Refuse settings the gateway must not run with. The auth token guards the webhook:
    a process without HTTP (`serve --no-http`) takes no webhook and needs none."""
    if http and settings.twilio_auth_token is None and not settings.dev_mode:
        raise ConfigError(
            "environment: TWILIO_AUTH_TOKEN: not set; set it to the account's auth token, "
            "or set CITYGATE_DEV_MODE=1 to accept unsigned requests from loopback only"
        )


def start_workers(runtime: Runtime, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """The email poller and the outbox worker, each when configured and not turned off."""
    from gateway.email_poller import run_poller
    from gateway.outbox import run_outbox

    settings = runtime.settings
    tasks = []
    if settings.imap_enabled and settings.run_poller:
        tasks.append(asyncio.create_task(run_poller(runtime, stop), name="poller"))
        log.info("email poller started for %s", settings.imap_mailbox)
    if (settings.smtp_enabled or settings.twilio_rest_enabled) and settings.run_outbox:
        tasks.append(asyncio.create_task(run_outbox(runtime, stop), name="outbox"))
        log.info("outbox worker started")
    return tasks


def create_app(settings: Settings, config: CityConfig | None = None) -> FastAPI:
    check_startable(settings)
    settings.operators()  # a malformed token list is refused at start
    runtime = Runtime.create(settings, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.twilio_auth_token is None:
            log.warning(DEV_MODE_BANNER)
        stop = asyncio.Event()
        tasks = start_workers(runtime, stop)
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.close()

    app = FastAPI(
        title="citygate",
        summary="SMS and email request gateway for municipal services",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(twilio_sms.InboundFastPath)  # innermost: past the router
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(AccessLog)  # outside the limit: a 413 is logged too
    app.router.routes[:0] = twilio_sms.routes  # first: the route every message takes
    app.include_router(api_cases.router)
    app.include_router(api_mail.router)
    app.include_router(api_keywords.router)
    app.include_router(api_outbox.router)
    app.include_router(stats.router)
    app.include_router(admin.router)  # with the pages of admin_pages on it too
    app.include_router(health.router)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ERRORS.labels(part="http").inc()
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and worker processes: settings from the environment,
    the heap settled (`settle_heap`). Only here, in the serving process: tests build many
    apps."""
    app = create_app(load_settings())
    settle_heap()
    return app


# The cyclic collector's thresholds in a serving process. Python's first threshold (700
# allocations) ran a young collection every few requests: 1.8 % of a webhook request's
# instructions (bench/instructions.py); at 10,000 it is a fifth of that, and what a
# request leaves for the collector is freed a few dozen requests later instead.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """What start-up built (modules, the city's config, the ORM's mappings, compiled
    patterns) lives as long as the process; `gc.freeze()` moves it out of the cyclic
    collector's way, so a full collection under load walks only what requests made
    instead of every object of the process (pauses of tens of milliseconds otherwise,
    docs/BENCHMARKS.md); then the collector runs less often (`GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
