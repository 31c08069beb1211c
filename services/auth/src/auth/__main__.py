"""`python -m auth serve | migrate | rotate-keys | rewrap-keys | clients create|list`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from common.cli import service_cli
from common.db import Database
from common.logs import configure_logging
from pydantic import ValidationError

from auth.clients.schemas import OIDC_SCOPES, ClientCreate, ClientCreated, ClientRead
from auth.clients.service import Clients
from auth.clock import system_clock
from auth.keys.service import RotationOutcome, rewrap_keys, rotation_step
from auth.main import create_app
from auth.settings import AuthSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
OLD_KEK_VARIABLE = "AUTH_OLD_KEY_ENCRYPTION_KEY"


cli = service_cli(
    "auth",
    AuthSettings,
    create_app,
    lambda settings: settings.auth_port,
    database_url=lambda settings: settings.auth_database_url,
    migrations=MIGRATIONS,
)


async def rotate_keys(settings: AuthSettings) -> RotationOutcome:
    database = Database(settings.auth_database_url)
    try:
        async with database.sessionmaker() as db, db.begin():
            return await rotation_step(db, settings, system_clock(), due=True)
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
        async with database.sessionmaker() as db, db.begin():
            return await rewrap_keys(db, old_kek, settings.key_encryption_key_bytes())
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


clients_cli = typer.Typer(no_args_is_help=True, help="The OpenID Connect client registry.")
cli.add_typer(clients_cli, name="clients")


async def create_registered_client(
    settings: AuthSettings, registration: ClientCreate
) -> ClientCreated:
    database = Database(settings.auth_database_url)
    try:
        async with database.sessionmaker() as db, db.begin():
            return await Clients(db, system_clock).register(registration)
    finally:
        await database.dispose()


@clients_cli.command("create")
def create_client_command(
    name: Annotated[str, typer.Option(help="Shown to users on the consent page.")],
    redirect_uri: Annotated[
        list[str], typer.Option(help="Exact redirect URI; repeat for several.")
    ],
    client_type: Annotated[
        str, typer.Option("--type", help="public (no secret) or confidential.")
    ] = "public",
    post_logout_redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Where end-session may send the user back.")
    ] = None,
    first_party: Annotated[bool, typer.Option(help="Skip the consent page.")] = False,
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Scopes it may ask for (default: openid profile email)."),
    ] = None,
) -> None:
    """Register a client and print it as JSON; a confidential client's secret is printed once."""
    settings = AuthSettings()
    configure_logging("auth", settings.log_level)
    try:
        registration = ClientCreate.model_validate(
            {
                "name": name,
                "type": client_type,
                "redirect_uris": redirect_uri,
                "post_logout_redirect_uris": post_logout_redirect_uri or [],
                "first_party": first_party,
                "scopes": scope or list(OIDC_SCOPES),
            }
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            typer.echo(f"{field}: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    created = asyncio.run(create_registered_client(settings, registration))
    typer.echo(created.model_dump_json(indent=2))


async def _registered_clients(settings: AuthSettings) -> list[ClientRead]:
    database = Database(settings.auth_database_url)
    try:
        async with database.sessionmaker() as db:
            return list(await Clients(db, system_clock).registered_clients())
    finally:
        await database.dispose()


@clients_cli.command("list")
def list_clients_command() -> None:
    """Print every registered client (never a secret), one JSON object a line."""
    settings = AuthSettings()
    configure_logging("auth", settings.log_level)
    for client in asyncio.run(_registered_clients(settings)):
        typer.echo(client.model_dump_json())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
