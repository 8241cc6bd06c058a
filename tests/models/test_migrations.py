"""The migrations make the schema the models describe, on SQLite and PostgreSQL: a
column, index or constraint added to a model without its migration (or the other way
round) would work in the tests' databases yet not in a city's upgraded one."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models.base import Base
from models.db import make_engine


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_database_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)  # migrated to head by the fixture
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []
