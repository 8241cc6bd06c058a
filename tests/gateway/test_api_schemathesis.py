"""The operator API against its own OpenAPI schema, by schemathesis, on SQLite and PostgreSQL.

The schema is the app's `/openapi.json`, loaded through schemathesis's ASGI integration
(`schemathesis.openapi.from_asgi`); every `/api/v1/…` operation gets generated requests,
ones that fit the schema and ones that do not, with the admin's bearer token, sent to
the app in-process. Every response must be no server error, have a status code the
schema lists for the operation, of the content type it lists, and match the response
schema of that status.

schemathesis sends the requests from its own event-loop thread, so the app is built in
the test (not the shared `app` fixture, whose database connections belong to the test
loop) and its lifespan, which closes the runtime, is ended on that thread too. The
operations are walked with `APIOperation.as_strategy` rather than the lazy
`schemathesis.pytest.from_fixture` loader, which reads a private attribute pytest 9.2
no longer has.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from gateway.settings import CityConfig, Settings
from tests.support import ADMIN_TOKEN

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
AUTHORIZATION = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES_PER_OPERATION = 12  # per generation mode: ~25 requests an operation


def _sweep(operation: Any, mode: GenerationMode) -> None:
    """`EXAMPLES_PER_OPERATION` generated requests to `operation`, each response checked."""

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,  # the app and its data are new each run: nothing to replay
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(headers=AUTHORIZATION, checks=CHECKS)

    run()


def _describe(error: BaseException) -> str:
    """An error, a group's every member, with the notes (the request to reproduce it)."""
    if isinstance(error, BaseExceptionGroup):
        return "\n".join(_describe(member) for member in error.exceptions)
    notes = "\n".join(getattr(error, "__notes__", []))
    return f"{type(error).__name__}: {error}"[:2000] + (f"\n{notes}" if notes else "")


def test_operator_api_conforms_to_its_schema(settings: Settings, city_config: CityConfig) -> None:
    app = create_app(settings, city_config)
    failures: list[str] = []
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        operations = [op for op in operations if op.path.startswith("/api/v1/")]
        assert len(operations) >= 12, [op.label for op in operations]
        for operation in operations:
            for mode in GenerationMode:
                try:
                    _sweep(operation, mode)
                except (Exception, BaseExceptionGroup) as error:  # all failures shown
                    failures.append(f"{operation.label} ({mode.value}):\n{_describe(error)}")
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan closes its runtime on that loop
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
