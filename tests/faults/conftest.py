"""Fixtures of the fault suite, and the figures it prints at the end of every run.

Each scenario records a `Figures` line (sent, accepted, stored, answered, duplicated,
lost) with the `fault_figures` fixture; `pytest_terminal_summary` prints them after
the tests, so that they show in CI's output without `-s`. The fixtures give a fresh
database on the tests' PostgreSQL (CITYGATE_TEST_POSTGRES_URL) and a private PostgreSQL
cluster; each removes what it made, whatever the test did.
"""

from __future__ import annotations

import os
import pwd
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from models.db import make_engine
from tests.faults.ledger import Figures
from tests.faults.processes import PG_BINARIES, PrivatePostgres
from tests.support import PG_URL, missing_service

FIGURES = pytest.StashKey[list[Figures]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures = terminalreporter.config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("fault figures")
        for item in figures:
            terminalreporter.write_line(item.line())


@pytest.fixture
def fault_figures(request: pytest.FixtureRequest) -> Callable[[Figures], None]:
    """Keeps a scenario's figures for the summary (and prints them, for `-s`)."""

    def record(figures: Figures) -> None:
        request.config.stash[FIGURES].append(figures)
        print(figures.line())

    return record


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """An empty database on the tests' PostgreSQL server (not migrated), dropped after."""
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"citygate_faults_{uuid.uuid4().hex[:10]}"
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        await admin.dispose()
        missing_service(f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}")
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running PostgreSQL cluster of this test's own, stopped and deleted after."""
    if not PG_BINARIES:
        missing_service("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing_service("no `postgres` user to run a private PostgreSQL cluster as")
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.close()
