"""`python -m users serve | migrate | create-admin`."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Annotated

import typer
from common.cli import service_cli
from common.db import Database
from common.logs import configure_logging
from pydantic import ValidationError

from users.accounts.schemas import UserCreate
from users.accounts.service import Accounts
from users.bootstrap import AdminNotCreated, ensure_admin, promote_existing
from users.main import create_app
from users.passwords.hashing import PasswordHasher
from users.settings import UsersSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


cli = service_cli(
    "users",
    UsersSettings,
    create_app,
    lambda settings: settings.users_port,
    database_url=lambda settings: settings.users_database_url,
    migrations=MIGRATIONS,
)


async def create_admin(settings: UsersSettings, email: str, username: str, password: str) -> str:
    try:
        data = UserCreate(email=email, username=username, password=password, full_name=username)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise AdminNotCreated(problems) from None
    database = Database(settings.users_database_url)
    hasher = PasswordHasher(settings.bcrypt_rounds, settings.bcrypt_concurrency)
    try:
        async with database.sessionmaker() as db, db.begin():
            user, outcome = await ensure_admin(Accounts(db, hasher), data, promote_matching=True)
        return f"{outcome}: admin {user.username} ({user.id})"
    finally:
        await database.dispose()


async def promote(settings: UsersSettings, user_id: uuid.UUID) -> str:
    database = Database(settings.users_database_url)
    hasher = PasswordHasher(settings.bcrypt_rounds, settings.bcrypt_concurrency)
    try:
        async with database.sessionmaker() as db, db.begin():
            user, changed = await promote_existing(Accounts(db, hasher), user_id)
        return f"{'promoted' if changed else 'unchanged'}: admin {user.username} ({user.id})"
    finally:
        await database.dispose()


@cli.command("create-admin")
def create_admin_command(
    email: Annotated[str | None, typer.Option(help="The new admin's email address.")] = None,
    username: Annotated[str | None, typer.Option(help="The new admin's username.")] = None,
    promote_existing: Annotated[
        uuid.UUID | None,
        typer.Option(
            help="Give the existing account with this id the admin role (check it first)."
        ),
    ] = None,
) -> None:
    """Create an admin account (asks for the password, or reads ADMIN_PASSWORD); idempotent.

    An account already holding the username is promoted only when the email and password given
    are its own; any other account only by its id, with --promote-existing."""
    settings = UsersSettings()
    configure_logging("users", settings.log_level)
    try:
        if promote_existing is not None:
            if email is not None or username is not None:
                raise AdminNotCreated("--promote-existing takes no --email or --username")
            typer.echo(asyncio.run(promote(settings, promote_existing)))
            return
        if email is None or username is None:
            raise AdminNotCreated("--email and --username are needed (or --promote-existing <id>)")
        password = os.environ.get("ADMIN_PASSWORD") or typer.prompt(
            "Password", hide_input=True, confirmation_prompt=True
        )
        typer.echo(asyncio.run(create_admin(settings, email, username, password)))
    except AdminNotCreated as exc:
        typer.echo(f"not created: {exc}", err=True)
        raise typer.Exit(1) from exc


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
