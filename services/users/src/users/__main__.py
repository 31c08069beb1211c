"""`python -m users serve | migrate | create-admin`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from common.cli import service_cli
from common.db import Database
from common.logs import configure_logging
from common.settings import ServiceSettings

from users.bootstrap import AdminNotCreated, ensure_admin
from users.main import create_app
from users.passwords.hashing import PasswordHasher
from users.settings import UsersSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def _settings(settings: ServiceSettings) -> UsersSettings:
    assert isinstance(settings, UsersSettings)
    return settings


cli = service_cli(
    "users",
    UsersSettings,
    create_app,
    lambda settings: _settings(settings).users_port,
    database_url=lambda settings: _settings(settings).users_database_url,
    migrations=MIGRATIONS,
)


async def create_admin(settings: UsersSettings, email: str, username: str, password: str) -> str:
    database = Database(settings.users_database_url)
    hasher = PasswordHasher(settings.bcrypt_rounds, settings.bcrypt_concurrency)
    try:
        async with database.sessionmaker() as session, session.begin():
            user, changed = await ensure_admin(session, hasher, email, username, password)
        return f"{'created' if changed else 'unchanged'}: admin {user.username} ({user.id})"
    finally:
        await database.dispose()


@cli.command("create-admin")
def create_admin_command(
    email: str = typer.Option(..., help="The admin's email address."),
    username: str = typer.Option(..., help="The admin's username."),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, envvar="ADMIN_PASSWORD"
    ),
) -> None:
    """Create an admin account, or give an existing account the admin role (idempotent)."""
    settings = UsersSettings()
    configure_logging("users", settings.log_level)
    try:
        typer.echo(asyncio.run(create_admin(settings, email, username, password)))
    except AdminNotCreated as exc:
        typer.echo(f"not created: {exc}", err=True)
        raise typer.Exit(1) from exc


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
