"""The command line every service shares: `python -m <service> serve | migrate`.

Services add their own commands (`rotate-keys`, `create-admin`) to the Typer app this returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from fastapi import FastAPI

from common.db import make_engine
from common.logs import configure_logging
from common.migrations import upgrade
from common.serve import serve
from common.settings import ServiceSettings

# The service's own settings class: `port` and `database_url` read its fields, typed.
Settings = TypeVar("Settings", bound=ServiceSettings)


async def migrate_database(url: str, migrations: Path) -> None:
    engine = make_engine(url, statement_timeout=None)  # an index built on a large table takes long
    try:
        await upgrade(engine, migrations)
    finally:
        await engine.dispose()


def service_cli(
    name: str,
    settings_factory: Callable[[], Settings],
    app_factory: Callable[[], FastAPI],
    port: Callable[[Settings], int],
    *,
    database_url: Callable[[Settings], str] | None = None,
    migrations: Path | None = None,
) -> typer.Typer:
    cli = typer.Typer(name=name, no_args_is_help=True, add_completion=False)

    @cli.callback()
    def group() -> None:
        """A Gatehouse service (a callback keeps `serve` a subcommand when it is the only one)."""

    def run_migrations(settings: Settings) -> Coroutine[Any, Any, None] | None:
        if database_url is None or migrations is None:
            return None
        return migrate_database(database_url(settings), migrations)

    @cli.command("serve")
    def serve_command() -> None:
        """Apply migrations (unless MIGRATE_ON_START=false) and serve HTTP until SIGTERM."""
        settings = settings_factory()
        configure_logging(name, settings.log_level, settings.log_format or "json")
        pending = run_migrations(settings) if settings.migrate_on_start else None
        if pending is not None:
            asyncio.run(pending)
        serve(app_factory(), settings.host, port(settings))

    if migrations is not None:

        @cli.command("migrate")
        def migrate_command() -> None:
            """Apply the database migrations and exit."""
            settings = settings_factory()
            configure_logging(name, settings.log_level, settings.log_format or "json")
            pending = run_migrations(settings)
            if pending is not None:
                asyncio.run(pending)

    return cli
