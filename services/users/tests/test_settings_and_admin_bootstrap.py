"""Settings, the bootstrap admin and the create-admin command."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid

import pytest
from asgi_lifespan import LifespanManager
from common.tokens import JwksCache
from pydantic import ValidationError
from users.bootstrap import bootstrap_admin
from users.main import create_app
from users.passwords.hashing import PasswordHasher
from users.settings import UsersSettings

from .support import PASSWORD, TEST_ROUNDS, UsersHarness, users_settings


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
            users.database, hasher, "ops@example.org", squatter["username"], PASSWORD
        )
    assert "not promoted" in caplog.text
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(squatter))
    assert me.json()["roles"] == ["user"]


async def test_replicas_bootstrapping_at_once_make_one_admin(users: UsersHarness) -> None:
    name = f"boot_{uuid.uuid4().hex[:6]}"
    hasher = PasswordHasher(TEST_ROUNDS, 4)
    await asyncio.gather(
        *(
            bootstrap_admin(users.database, hasher, f"{name}@example.org", name, PASSWORD)
            for _ in range(3)
        )
    )
    rows = [r for r in await users.outbox() if r.payload["data"].get("username") == name]
    assert len(rows) == 1


def test_create_admin_command(users_database_url: str) -> None:
    name = f"ops_{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "USERS_DATABASE_URL": users_database_url,
        "BCRYPT_ROUNDS": "4",
        "ADMIN_PASSWORD": PASSWORD,
    }
    command = [
        sys.executable,
        "-m",
        "users",
        "create-admin",
        "--email",
        f"{name}@example.org",
        "--username",
        name,
    ]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created")
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0
    assert second.stdout.startswith("unchanged")
    weak = subprocess.run(
        [*command[:-1], "other_" + name],
        env={**env, "ADMIN_PASSWORD": "password"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert weak.returncode == 1
    assert "password" in weak.stderr
