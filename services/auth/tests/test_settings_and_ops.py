"""Settings refuse unsafe values; health, readiness and garbage input never give a 500."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from auth.settings import AuthSettings
from pydantic import ValidationError

from .support import AuthHarness

REAL_KEK = base64.urlsafe_b64encode(os.urandom(32)).decode()
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "auth_database_url": "postgresql+asyncpg://auth@db/auth",
    "redis_url": "redis://redis:6379/0",
    "amqp_url": "amqp://rabbit/",
    "internal_client_secret": "a-real-internal-secret-of-length",
    "auth_key_encryption_key": REAL_KEK,
    "auth_mfa_encryption_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
}


def test_production_accepts_real_settings() -> None:
    settings = AuthSettings(**PRODUCTION)
    assert len(settings.key_encryption_key_bytes()) == 32


def test_production_refuses_the_placeholder_kek() -> None:
    values = {**PRODUCTION}
    del values["auth_key_encryption_key"]
    with pytest.raises(ValidationError, match="AUTH_KEY_ENCRYPTION_KEY"):
        AuthSettings(**values)


def test_production_refuses_the_placeholder_mfa_key() -> None:
    values = {**PRODUCTION}
    del values["auth_mfa_encryption_key"]
    with pytest.raises(ValidationError, match="AUTH_MFA_ENCRYPTION_KEY"):
        AuthSettings(**values)


@pytest.mark.parametrize(
    "key", [base64.urlsafe_b64encode(os.urandom(16)).decode(), "not base64 at all !!!"]
)
def test_malformed_mfa_key_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="AUTH_MFA_ENCRYPTION_KEY"):
        AuthSettings(auth_mfa_encryption_key=key)


def test_production_refuses_embedded_backends() -> None:
    with pytest.raises(ValidationError, match="AUTH_DATABASE_URL"):
        AuthSettings(**{**PRODUCTION, "auth_database_url": "sqlite+aiosqlite:///x.db"})


@pytest.mark.parametrize(
    "kek",
    [
        base64.urlsafe_b64encode(os.urandom(16)).decode(),
        "not base64 at all !!!",
        base64.urlsafe_b64encode(os.urandom(48)).decode(),
    ],
)
def test_malformed_kek_is_refused(kek: str) -> None:
    with pytest.raises(ValidationError, match="AUTH_KEY_ENCRYPTION_KEY"):
        AuthSettings(auth_key_encryption_key=kek)


def test_development_stretches_the_placeholder() -> None:
    assert len(AuthSettings().key_encryption_key_bytes()) == 32


@pytest.mark.parametrize(
    "override",
    [
        {"access_token_ttl": 1801},
        {"access_token_ttl": 10},
        {"rsa_key_bits": 1024},
        {"refresh_idle_timeout": 8 * 86400},
    ],
)
def test_unsafe_lifetimes_are_refused(override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AuthSettings(**override)


async def test_health_and_readiness(auth: AuthHarness) -> None:
    assert (await auth.client.get("/health")).json() == {"status": "ok"}
    ready = await auth.client.get("/ready")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"database", "redis"}


GARBAGE = [
    "",
    " ",
    "Bearer",
    "a",
    "a.b",
    "a.b.c",
    "a.b.c.d",
    "...",
    "eyJ.eyJ.sig",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    "\x00\x01\x02",
    "é" * 100,
    "x" * 20000,
    "%00%ff",
    "null",
    "[]",
    "{}",
]


@pytest.mark.parametrize("token", GARBAGE)
async def test_garbage_tokens_never_500(auth: AuthHarness, token: str) -> None:
    refresh = await auth.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert refresh.status_code in (401, 422)
    assert refresh.headers["content-type"] == "application/problem+json"
    grant = await auth.client.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )
    assert grant.status_code == 400
    assert grant.json()["error"] in {"invalid_grant", "invalid_request"}
    revoke = await auth.client.post("/api/v1/auth/revoke", data={"token": token})
    assert revoke.status_code in (200, 400)
    if token.isprintable() and token.isascii() and token.strip():
        logout = await auth.client.post(
            "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
        )
        assert logout.status_code == 401
        assert logout.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        (
            "/api/v1/auth/token",
            {
                "content": b"\xff\xfe",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
        ),
        (
            "/api/v1/auth/token",
            {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        ),
        (
            "/api/v1/auth/revoke",
            {"content": b'{"token": 1}', "headers": {"content-type": "application/json"}},
        ),
        (
            "/internal/v1/introspect",
            {"content": b"\xff", "headers": {"content-type": "text/plain"}},
        ),
        (
            "/api/v1/auth/login",
            {
                "content": b"\xff\xfe",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
        ),
        (
            "/api/v1/auth/refresh",
            {"content": b"[1,2]", "headers": {"content-type": "application/json"}},
        ),
    ],
)
async def test_malformed_bodies_never_500(
    auth: AuthHarness, path: str, kwargs: dict[str, Any]
) -> None:
    response = await auth.client.post(path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
