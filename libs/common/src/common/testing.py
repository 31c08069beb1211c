"""Test support shared by the services' suites: a fresh PostgreSQL database per test session,
migrated with the service's own Alembic history, and a session per test inside a transaction
that is rolled back afterwards (the app's commits only release savepoints).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from common.migrations import upgrade
from common.tokens import JwksFetcher

ADMIN_URL_ENV = "TEST_DATABASE_URL"
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)


REDIS_SERVER_ENV = "TEST_REDIS_SERVER"
DEFAULT_REDIS_SERVER = "redis://127.0.0.1:6379"


def redis_url(db: int) -> str:
    """The URL of Redis database `db` for a suite's tests: the machine's Redis, or the server in
    `TEST_REDIS_SERVER` (so two checkouts can run their suites at once without sharing keys)."""
    return f"{os.environ.get(REDIS_SERVER_ENV, DEFAULT_REDIS_SERVER).rstrip('/')}/{db}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ThrowawayRedis:
    """A redis-server of the test's own on a spare port that keeps nothing on disk, to stop and
    restart (empty) in fault tests — never the machine's shared Redis."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.port, socket_timeout=0.5) as probe:
                    if probe.ping():
                        return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("throwaway redis did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port: every key is gone, as after a crash."""
        self.stop()
        self.start()


@asynccontextmanager
async def fresh_database(service: str, migrations: Path) -> AsyncIterator[str]:
    """Create `gatehouse_test_<service>_<random>`, migrate it, yield its URL, drop it."""
    name = f"gatehouse_test_{service}_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
        engine = create_async_engine(url)
        try:
            await upgrade(engine, migrations)
        finally:
            await engine.dispose()
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@asynccontextmanager
async def rolled_back_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose every commit is a savepoint inside one outer transaction, rolled back."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            if transaction.is_active:
                await transaction.rollback()


class TokenFactory:
    """Signs test access tokens with a throwaway RSA key and serves the matching JWKS."""

    def __init__(self, issuer: str, audience: str, kid: str = "test-key-1") -> None:
        self.issuer = issuer
        self.audience = audience
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def fetcher(self) -> JwksFetcher:
        async def fetch() -> dict[str, Any]:
            return self.jwks()

        return fetch

    def access_token(
        self,
        subject: str,
        *,
        session_id: str | None = "test-session",
        scope: str = "",
        roles: tuple[str, ...] = ("user",),
        audience: str | None = None,
        lifetime: int = 900,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.audience,
            "client_id": "gatehouse",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": scope,
            "roles": list(roles),
        }
        if session_id is not None:
            payload["sid"] = session_id
        payload.update(claims)
        header = {"typ": "at+jwt", "kid": self.kid, **(headers or {})}
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers=header)
