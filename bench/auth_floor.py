"""The floor for auth's two hot routes: the least a Python service can do for the same answers.

A bare Starlette app (no FastAPI, no SQLAlchemy, no Pydantic), its own uvicorn process on uvloop
and httptools like the services, on auth's database and Redis, doing what auth does per request:

- `POST /internal/v1/introspect` (HTTP Basic client, `token_type_hint=access_token`): the
  client's row and its secret's SHA-256, the access token verified with `common.tokens.
  TokenVerifier` (with the verified-token cache, as auth's `TokenInspector`), the session's row,
  `common.revocation.is_revoked` (one Redis MGET), the RFC 7662 answer;
- `POST /api/v1/auth/refresh`: in one transaction, the refresh token claimed (UPDATE ...
  RETURNING), its session read, the account's roles and permissions asked of users (its internal
  API, with a service token signed once), the session touched, a new access token signed (RS256,
  auth's active key) and a new refresh token stored; the same `TokenPair` JSON.

Nothing on the hot path comes from auth's code: its `KeyRing` only loads the active key at start.
bcrypt has no part in either route. Run (the bench does): `python -m bench.auth_floor` with auth's
environment and FLOOR_PORT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import jwt
import uvicorn
from auth.keys.service import KeyRing
from auth.settings import AuthSettings
from common.db import Database
from common.redis import make_redis
from common.revocation import is_revoked
from common.serve import freeze_startup_heap
from common.testing import free_port
from common.tokens import InvalidToken, JwksCache, TokenVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.listener import Listener, start_listener
from tests.integration.platform import ROOT

INTROSPECT_SCOPE = "tokens:introspect"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
INACTIVE = b'{"active":false}'
UNAUTHORIZED = Response(b'{"status":401}', 401, media_type="application/problem+json")
BAD_REQUEST = Response(b'{"status":400}', 400, media_type="application/problem+json")
CLIENT = "SELECT client_id, secret_hash, allowed_scopes FROM service_clients WHERE client_id = $1"
SESSION = """
SELECT id, user_id, client_id, created_at, expires_at, last_used_at, revoked_at, revoked_reason,
       client_ip
FROM sessions WHERE id = $1
"""
CLAIM = """
UPDATE refresh_tokens SET used_at = $2
WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL
RETURNING session_id, idle_expires_at
"""
TOUCH = "UPDATE sessions SET last_used_at = $2 WHERE id = $1"
STORE = """
INSERT INTO refresh_tokens (token_hash, session_id, created_at, idle_expires_at)
VALUES ($1, $2, $3, $4)
"""


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status, NO_STORE, media_type="application/json"
    )


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


async def introspect(request: Request) -> Response:
    state = request.app.state
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return UNAUTHORIZED
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except ValueError:
        return UNAUTHORIZED
    client_id, _, secret = (unquote(part) for part in decoded.partition(":"))
    form = dict(parse_qsl((await request.body()).decode()))
    token = form.get("token")
    if token is None:
        return BAD_REQUEST
    async with state.pool.acquire() as connection:
        client = await connection.fetchrow(CLIENT, client_id)
        if client is None or not hmac.compare_digest(_sha256(secret), client["secret_hash"]):
            return UNAUTHORIZED
        if INTROSPECT_SCOPE not in client["allowed_scopes"].split():
            return Response(b'{"status":403}', 403, media_type="application/problem+json")
        try:
            audience = jwt.decode(token, options={"verify_signature": False}).get("aud")
            claims = await state.verifiers[audience].verify(token)
        except (jwt.PyJWTError, InvalidToken, KeyError, TypeError, AttributeError):
            return Response(INACTIVE, headers=NO_STORE, media_type="application/json")
        if claims.session_id is not None:
            login_session = await connection.fetchrow(SESSION, claims.session_id)
            if login_session is None or login_session["revoked_at"] is not None:
                return Response(INACTIVE, headers=NO_STORE, media_type="application/json")
    if await is_revoked(state.redis, claims.session_id, claims.subject, claims.issued_at):
        return Response(INACTIVE, headers=NO_STORE, media_type="application/json")
    raw = claims.raw
    answer = {
        "active": True,
        "token_type": "Bearer",
        "scope": " ".join(sorted(claims.scopes)),
        "client_id": claims.client_id,
        "sub": claims.subject,
        "aud": raw.get("aud"),
        "iss": raw.get("iss"),
        "exp": claims.expires_at,
        "iat": claims.issued_at,
        "nbf": raw.get("nbf"),
        "jti": claims.token_id,
        "roles": list(claims.roles),
    }
    if claims.session_id is not None:
        answer["sid"] = claims.session_id
    return _json(answer)


class Signer:
    """RS256 with auth's active key, the claims auth puts in its tokens."""

    def __init__(self, ring: KeyRing, settings: AuthSettings) -> None:
        self.key = ring.active()
        self.settings = settings
        self._service_token: tuple[str, int] | None = None

    def sign(self, claims: dict[str, Any]) -> str:
        now = int(time.time())
        payload = {
            "iss": self.settings.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self.settings.access_token_ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        headers = {"typ": "at+jwt", "kid": self.key.kid}
        return jwt.encode(payload, self.key.private_key, algorithm="RS256", headers=headers)

    def users_token(self) -> str:
        """auth's service token for users, signed again a minute before it expires."""
        if self._service_token is None or self._service_token[1] < time.time() + 60:
            scopes = "credentials:verify users:authorization"
            claims = {"sub": "auth", "aud": "users", "client_id": "auth", "roles": []}
            token = self.sign({**claims, "scope": scopes})
            self._service_token = (token, int(time.time()) + self.settings.access_token_ttl)
        return self._service_token[0]


async def refresh(request: Request) -> Response:
    state = request.app.state
    settings: AuthSettings = state.settings
    signer: Signer = state.signer
    try:
        presented = json.loads(await request.body())["refresh_token"]
    except (ValueError, KeyError, TypeError):
        return BAD_REQUEST
    if not isinstance(presented, str) or not 0 < len(presented) <= 512:
        return BAD_REQUEST
    now = datetime.now(UTC)
    async with state.pool.acquire() as connection, connection.transaction():
        claimed = await connection.fetchrow(CLAIM, _sha256(presented), now)
        if claimed is None:
            return UNAUTHORIZED  # auth also revokes a reused token's session: not the hot path
        login_session = await connection.fetchrow(SESSION, claimed["session_id"])
        if login_session is None or login_session["revoked_at"] is not None:
            return UNAUTHORIZED
        if now >= claimed["idle_expires_at"] or now >= login_session["expires_at"]:
            return UNAUTHORIZED
        user_id = login_session["user_id"]
        headers = {"Authorization": f"Bearer {signer.users_token()}"}
        async with state.http.get(
            f"{settings.users_url}/internal/v1/users/{user_id}/authorization", headers=headers
        ) as response:
            if response.status != 200:
                return Response(b'{"status":503}', 503, media_type="application/problem+json")
            account = await response.json()
        if not account["is_active"]:
            return UNAUTHORIZED
        await connection.execute(TOUCH, login_session["id"], now)
        access = signer.sign(
            {
                "sub": user_id,
                "aud": settings.audience,
                "client_id": login_session["client_id"],
                "sid": login_session["id"],
                "roles": list(account["roles"]),
                "scope": " ".join(sorted(set(account["permissions"]))),
            }
        )
        new_token = secrets.token_urlsafe(32)
        idle_end = min(
            now + timedelta(seconds=settings.refresh_idle_timeout), login_session["expires_at"]
        )
        await connection.execute(STORE, _sha256(new_token), login_session["id"], now, idle_end)
    return _json(
        {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": settings.access_token_ttl,
            "refresh_token": new_token,
            "refresh_expires_in": max(0, int(idle_end.timestamp()) - int(now.timestamp())),
        }
    )


async def health(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(settings: AuthSettings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database(settings.auth_database_url)
        ring = KeyRing(settings, lambda: datetime.now(UTC))
        await ring.reload_from(database)  # at start only: the active key, decrypted
        await database.dispose()
        jwks = JwksCache(lambda: _published(ring))
        audiences = {settings.audience, "auth", "users"}
        state = app.state
        state.settings = settings
        state.signer = Signer(ring, settings)
        state.verifiers = {
            audience: TokenVerifier(
                jwks,
                issuer=settings.issuer,
                audience=audience,
                leeway=settings.token_leeway_seconds,
                cache_size=settings.verified_token_cache,
            )
            for audience in audiences
        }
        # auth's pool: common.db's 20 connections.
        dsn = settings.auth_database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        state.pool = await asyncpg.create_pool(dsn, min_size=1, max_size=20)
        state.redis = make_redis(settings.redis_url)
        state.http = aiohttp.ClientSession()
        freeze_startup_heap()  # as common.serve.serve does for the services
        try:
            yield
        finally:
            await state.http.close()
            await state.redis.aclose()
            await state.pool.close()

    return Starlette(
        routes=[
            Route("/internal/v1/introspect", introspect, methods=["POST"]),
            Route("/api/v1/auth/refresh", refresh, methods=["POST"]),
            Route("/health", health),
        ],
        lifespan=lifespan,
    )


async def _published(ring: KeyRing) -> dict[str, Any]:
    return ring.jwks


def start(env: dict[str, str], log_dir: Path) -> Listener:
    """The floor as its own process (`python -m bench.auth_floor`) with auth's settings."""
    port = free_port()
    command = [sys.executable, "-m", "bench.auth_floor"]
    env = {**env, "FLOOR_PORT": str(port)}
    return start_listener(
        "auth floor", command, port, log_dir / "auth-floor.log", env=env, cwd=ROOT
    )


def main() -> None:
    # As common.serve runs the services: uvloop and httptools (uvicorn's "auto"), no access log,
    # no Server or Date header.
    uvicorn.run(
        create_app(AuthSettings()),
        host="127.0.0.1",
        port=int(os.environ["FLOOR_PORT"]),
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
