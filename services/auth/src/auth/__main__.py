"""`python -m auth serve | migrate | rotate-keys`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer
from common.cli import service_cli
from common.db import Database
from common.logs import configure_logging
from common.settings import ServiceSettings

from auth.clock import system_clock
from auth.keys.service import RotationOutcome, rewrap_keys, rotation_step
from auth.main import create_app
from auth.settings import AuthSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
OLD_KEK_VARIABLE = "AUTH_OLD_KEY_ENCRYPTION_KEY"


def _settings(settings: ServiceSettings) -> AuthSettings:
    assert isinstance(settings, AuthSettings)
    return settings


cli = service_cli(
    "auth",
    AuthSettings,
    create_app,
    lambda settings: _settings(settings).auth_port,
    database_url=lambda settings: _settings(settings).auth_database_url,
    migrations=MIGRATIONS,
)


async def rotate_keys(settings: AuthSettings) -> RotationOutcome:
    database = Database(settings.auth_database_url)
    try:
        async with database.sessionmaker() as session, session.begin():
            return await rotation_step(session, settings, system_clock(), due=True)
    finally:
        await database.dispose()


@cli.command("rotate-keys")
def rotate_keys_command() -> None:
    """One key-rotation step; run again after the printed time to finish a rotation.

    Creates a pending key if there is none; else promotes the pending key once it has been
    published for the JWKS max-age, retiring the active one.
    """
    settings = AuthSettings()
    configure_logging("auth", settings.log_level)
    outcome = asyncio.run(rotate_keys(settings))
    typer.echo(f"{outcome.action}: {outcome.kid or '-'} {outcome.detail}".rstrip())
    if outcome.action in {"created", "waiting"} and settings.key_rotation_enabled:
        typer.echo("the running service promotes the pending key once it is ready")


async def rewrap(settings: AuthSettings, old_kek: bytes) -> int:
    database = Database(settings.auth_database_url)
    try:
        async with database.sessionmaker() as session, session.begin():
            return await rewrap_keys(session, old_kek, settings.key_encryption_key_bytes())
    finally:
        await database.dispose()


@cli.command("rewrap-keys")
def rewrap_keys_command() -> None:
    """Re-encrypt the stored signing keys under a new AUTH_KEY_ENCRYPTION_KEY.

    Set AUTH_KEY_ENCRYPTION_KEY to the new key and AUTH_OLD_KEY_ENCRYPTION_KEY to the old one,
    run this once, then restart the replicas with the new key. Safe to re-run.
    """
    settings = AuthSettings()
    configure_logging("auth", settings.log_level)
    old = AuthSettings(auth_key_encryption_key=os.environ.get(OLD_KEK_VARIABLE, ""))
    changed = asyncio.run(rewrap(settings, old.key_encryption_key_bytes()))
    typer.echo(f"re-encrypted {changed} signing key(s)")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
