"""Settings, the bootstrap admin and the create-admin command."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from common.tokens import JwksCache
from pydantic import ValidationError
from users.__main__ import create_admin
from users.accounts.schemas import UserCreate
from users.bootstrap import AdminNotCreated, bootstrap_admin
from users.main import create_app
from users.passwords.hashing import PasswordHasher
from users.settings import UsersSettings

from .support import PASSWORD, TEST_ROUNDS, UsersHarness, users_settings


def admin(email: str, username: str) -> UserCreate:
    return UserCreate(email=email, username=username, password=PASSWORD, full_name=username)


def test_production_defaults() -> None:
    assert UsersSettings().bcrypt_rounds == 12
    with pytest.raises(ValidationError, match="BCRYPT_ROUNDS"):
        UsersSettings(
            environment="production",
            bcrypt_rounds=10,
            users_database_url="postgresql+asyncpg://db/users",
            amqp_url="amqp://mq/",
            internal_client_secret="a-real-secret-of-enough-length",
        )
    with pytest.raises(ValidationError, match="USERS_DATABASE_URL"):
        UsersSettings(
            environment="production",
            amqp_url="amqp://mq/",
            internal_client_secret="a-real-secret-of-enough-length",
        )


async def test_bootstrap_admin_is_created_once(
    users: UsersHarness, users_database_url: str
) -> None:
    name = f"root_{uuid.uuid4().hex[:6]}"
    settings = users_settings(
        users_database_url,
        bootstrap_admin_email=f"{name}@example.org",
        bootstrap_admin_username=name,
        bootstrap_admin_password=PASSWORD,
    )
    for _ in range(2):  # a second start changes nothing
        app = create_app(
            settings, broker=users.broker.client(), jwks=JwksCache(users.tokens.fetcher())
        )
        async with LifespanManager(app):
            pass
    rows = [r for r in await users.outbox() if r.payload["data"].get("username") == name]
    assert len(rows) == 1
    response = await users.client.post(
        "/internal/v1/credentials/verify",
        json={"login": name, "password": PASSWORD},
        headers=users.service_bearer("credentials:verify"),
    )
    assert response.status_code == 200
    assert response.json()["roles"] == ["admin", "user"]


async def test_bootstrap_never_promotes_someone_elses_account(
    users: UsersHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone may register the username before the operator configures it as the admin's."""
    squatter = await users.register()
    hasher = PasswordHasher(TEST_ROUNDS, 2)
    with caplog.at_level(logging.ERROR, "gatehouse.users.bootstrap"):
        await bootstrap_admin(
            users.database, hasher, admin("ops@example.org", squatter["username"])
        )
    assert "not promoted" in caplog.text
    assert "create-admin --email" not in caplog.text  # no advice to promote whoever holds it
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(squatter))
    assert me.json()["roles"] == ["user"]


async def test_replicas_bootstrapping_at_once_make_one_admin(users: UsersHarness) -> None:
    name = f"boot_{uuid.uuid4().hex[:6]}"
    hasher = PasswordHasher(TEST_ROUNDS, 4)
    await asyncio.gather(
        *(
            bootstrap_admin(users.database, hasher, admin(f"{name}@example.org", name))
            for _ in range(3)
        )
    )
    rows = [r for r in await users.outbox() if r.payload["data"].get("username") == name]
    assert len(rows) == 1


def users_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m users ARGS` as an operator runs it, with `env` as its whole environment."""
    return subprocess.run(
        [sys.executable, "-m", "users", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_create_admin_command(users_database_url: str) -> None:
    name = f"ops_{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "USERS_DATABASE_URL": users_database_url,
        "BCRYPT_ROUNDS": "4",
        "ADMIN_PASSWORD": PASSWORD,
    }
    command = ["create-admin", "--email", f"{name}@example.org", "--username"]
    first = users_command(*command, name, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created")
    second = users_command(*command, name, env=env)
    assert second.returncode == 0
    assert second.stdout.startswith("unchanged")
    weak = users_command(*command, "other_" + name, env={**env, "ADMIN_PASSWORD": "password"})
    assert weak.returncode == 1
    assert "password" in weak.stderr


async def test_create_admin_never_promotes_a_squatter_of_the_username(
    users: UsersHarness, users_database_url: str
) -> None:
    """Someone registered the name first, with their own address and password: the command
    refuses, and its message does not tell the operator to promote blindly."""
    squatter = await users.register()
    settings = users_settings(users_database_url)
    with pytest.raises(AdminNotCreated, match="--promote-existing") as refused:
        await create_admin(settings, "ops@example.org", squatter["username"], PASSWORD)
    assert squatter["id"] in str(refused.value)
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(squatter))
    assert me.json()["roles"] == ["user"]


async def test_create_admin_needs_the_accounts_email_and_password_to_promote_it(
    users: UsersHarness, users_database_url: str
) -> None:
    own = await users.register()
    settings = users_settings(users_database_url)
    with pytest.raises(AdminNotCreated):  # right address, wrong password: not proven to be theirs
        await create_admin(settings, own["email"], own["username"], "another long passphrase")
    assert (
        await create_admin(settings, own["email"].upper(), own["username"], PASSWORD)
    ).startswith("promoted")
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(own))
    assert me.json()["roles"] == ["admin", "user"]


def test_create_admin_promote_existing_by_id(users_database_url: str) -> None:
    name = f"own_{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "USERS_DATABASE_URL": users_database_url, "BCRYPT_ROUNDS": "4"}
    created = users_command(
        *("create-admin", "--email", f"{name}@example.org", "--username", name),
        env={**env, "ADMIN_PASSWORD": PASSWORD},
    )
    assert created.returncode == 0, created.stderr
    user_id = created.stdout.strip().rsplit("(", 1)[1].rstrip(")")
    again = users_command("create-admin", "--promote-existing", user_id, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("unchanged")
    missing = users_command("create-admin", "--promote-existing", str(uuid.uuid4()), env=env)
    assert missing.returncode == 1
    assert "no account" in missing.stderr


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("bootstrap_admin_email", "not-an-address", "BOOTSTRAP_ADMIN_EMAIL"),
        ("bootstrap_admin_password", "password", "BOOTSTRAP_ADMIN_PASSWORD"),
        ("bootstrap_admin_username", "a b", "BOOTSTRAP_ADMIN_USERNAME"),
    ],
)
def test_a_bootstrap_admin_that_cannot_be_created_is_a_bad_setting(
    field: str, value: str, named: str
) -> None:
    values: dict[str, Any] = {
        "bootstrap_admin_email": "ops@example.org",
        "bootstrap_admin_username": "ops",
        "bootstrap_admin_password": PASSWORD,
        field: value,
    }
    with pytest.raises(ValidationError, match=named) as refused:
        UsersSettings(**values)
    assert PASSWORD not in str(refused.value)  # a setting error never echoes the password


def test_a_partial_bootstrap_admin_is_a_bad_setting() -> None:
    with pytest.raises(ValidationError, match="BOOTSTRAP_ADMIN_PASSWORD"):
        UsersSettings(bootstrap_admin_email="ops@example.org", bootstrap_admin_username="ops")
    assert (
        UsersSettings(bootstrap_admin_email="", bootstrap_admin_username="").bootstrap_admin_email
        is None
    )


def test_serve_stops_at_start_on_a_bad_bootstrap_admin(users_database_url: str) -> None:
    env = {
        **os.environ,
        "USERS_DATABASE_URL": users_database_url,
        "USERS_PORT": "1",  # never reached: the settings are refused first
        "BOOTSTRAP_ADMIN_EMAIL": "not-an-address",
        "BOOTSTRAP_ADMIN_USERNAME": "ops",
        "BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
    }
    run = users_command("serve", env=env)
    assert run.returncode != 0
    assert "BOOTSTRAP_ADMIN_EMAIL" in run.stderr
