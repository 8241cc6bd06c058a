"""What every `citygate` subcommand shares: the consoles, the settings, a runtime to work in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rich.console import Console

from gateway.runtime import Runtime
from gateway.settings import Settings, config_path_from_env, load_settings

T = TypeVar("T")
out = Console()
err = Console(stderr=True)


def settings_from_env() -> Settings:
    return load_settings(config=config_path_from_env())


def run_with_runtime(work: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run `work` with a runtime built from the environment (SQLite migrated first)."""
    settings = settings_from_env()
    runtime = Runtime.create(settings)

    async def main() -> T:
        try:
            if migrate and runtime.is_sqlite:
                await runtime.migrate()
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(main())
