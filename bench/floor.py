"""The floor for `GET /api/v1/users/me`: the least a Python service can do for that answer.

A bare Starlette app on asyncpg (no FastAPI, no SQLAlchemy, no Pydantic), run as its own uvicorn
process on uvloop and httptools like the services: the same token check (`common.tokens.
TokenVerifier` with its verified-token cache, against auth's JWKS), the same query as
`users.accounts.repository.profile` (the user by primary key LEFT JOIN its role names) on the
same database, and the same `UserRead` JSON fields, written with the standard library's `json`.
The bench prints the users service's CPU per request as a multiple of this one's.

Run (the bench does): `python -m bench.floor` with FLOOR_PORT, FLOOR_DATABASE_URL (an asyncpg
DSN; a SQLAlchemy `postgresql+asyncpg://` URL is taken too), JWKS_URL, ISSUER and AUDIENCE.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import uvicorn
from common.serve import freeze_startup_heap
from common.testing import free_port
from common.tokens import InvalidToken, JwksCache, TokenVerifier, http_jwks_fetcher
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.listener import Listener, start_listener
from tests.integration.platform import ROOT

# users.accounts.repository.profile, as SQL.
PROFILE = """
SELECT users.id, users.email, users.username, users.full_name, users.is_active,
       users.email_verified, users.pending_email, users.created_at, user_roles.role_name
FROM users LEFT OUTER JOIN user_roles ON user_roles.user_id = users.id
WHERE users.id = $1
ORDER BY user_roles.role_name
"""
UNAUTHORIZED = Response(
    b'{"title":"Unauthorized","status":401}', 401, media_type="application/problem+json"
)


def _timestamp(value: datetime) -> str:
    """As Pydantic writes an aware UTC datetime: ISO 8601 with `Z`."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


async def read_me(request: Request) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return UNAUTHORIZED
    verifier: TokenVerifier = request.app.state.verifier
    try:
        claims = await verifier.verify(token.strip())
        user_id = uuid.UUID(claims.subject)
    except (InvalidToken, ValueError):
        return UNAUTHORIZED
    pool: Any = request.app.state.pool
    async with pool.acquire() as connection:
        rows = await connection.fetch(PROFILE, user_id)
    if not rows or not rows[0]["is_active"]:
        return UNAUTHORIZED
    first = rows[0]
    body = {
        "id": str(first["id"]),
        "email": first["email"],
        "username": first["username"],
        "full_name": first["full_name"],
        "is_active": first["is_active"],
        "email_verified": first["email_verified"],
        "pending_email": first["pending_email"],
        "roles": [row["role_name"] for row in rows if row["role_name"] is not None],
        "created_at": _timestamp(first["created_at"]),
    }
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


async def health(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(database_url: str, jwks_url: str, issuer: str, audience: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The users service's pool holds up to 20 connections (10 + 10 overflow).
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        app.state.pool = await asyncpg.create_pool(dsn, min_size=1, max_size=20)
        app.state.verifier = TokenVerifier(
            JwksCache(http_jwks_fetcher(jwks_url)),
            issuer=issuer,
            audience=audience,
            cache_size=10_000,  # users' VERIFIED_TOKEN_CACHE default
        )
        freeze_startup_heap()  # as common.serve.serve does for the services
        try:
            yield
        finally:
            await app.state.pool.close()

    return Starlette(
        routes=[Route("/api/v1/users/me", read_me), Route("/health", health)],
        lifespan=lifespan,
    )


def start(database_url: str, auth_url: str, issuer: str, audience: str, log_dir: Path) -> Listener:
    """The floor as its own process (`python -m bench.floor`), answering."""
    port = free_port()
    env = {
        **os.environ,
        "FLOOR_PORT": str(port),
        "FLOOR_DATABASE_URL": database_url,
        "JWKS_URL": f"{auth_url}/.well-known/jwks.json",
        "ISSUER": issuer,
        "AUDIENCE": audience,
    }
    command = [sys.executable, "-m", "bench.floor"]
    return start_listener("floor", command, port, log_dir / "floor.log", env=env, cwd=ROOT)


def main() -> None:
    app = create_app(
        os.environ["FLOOR_DATABASE_URL"],
        os.environ["JWKS_URL"],
        os.environ["ISSUER"],
        os.environ["AUDIENCE"],
    )
    # As common.serve runs the services: uvloop and httptools (uvicorn's "auto"), no access log,
    # no Server or Date header.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["FLOOR_PORT"]),
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
