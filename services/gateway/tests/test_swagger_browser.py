"""Swagger UI through the gateway in a real headless Chromium (Debian `chromium`, driven by
playwright): log in with **Authorize** (password flow to auth's login through the gateway), call
`GET /api/v1/users/me`, see 200. auth and users are doubles; the token is a real RS256 token
checked by the gateway against the auth double's JWKS."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
from common.errors import Unauthorized
from common.security import oauth2_scheme
from common.testing import TokenFactory, read_me_in_swagger_ui
from fastapi import Depends, FastAPI
from fastapi.security import OAuth2PasswordRequestForm
from gateway.main import create_app

from .support import gateway_settings
from .upstream import Served

USER_ID = "6a1f0c9e-3b7d-4e2a-9c51-0d8e7f6a5b43"
USERNAME = "swagger_ada"
PASSWORD = "correct horse battery"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="Debian chromium is not installed (scripts/ensure-system-deps.sh installs it)",
    ),
]


def auth_double(tokens: TokenFactory) -> FastAPI:
    app = FastAPI(openapi_url="/openapi.json")

    @app.get("/.well-known/jwks.json")
    async def key_set() -> dict[str, Any]:
        return tokens.jwks()

    @app.post("/api/v1/auth/login")
    async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
        """Log in (the double knows one account)."""
        if (form.username, form.password) != (USERNAME, PASSWORD):
            raise Unauthorized("Wrong username or password.")
        return {
            "access_token": tokens.access_token(USER_ID),
            "token_type": "bearer",
            "expires_in": 900,
            "refresh_token": "opaque",
            "refresh_expires_in": 604800,
        }

    return app


def users_double() -> FastAPI:
    app = FastAPI(openapi_url="/openapi.json")

    @app.get("/api/v1/users/me")
    async def read_me(token: Annotated[str | None, Depends(oauth2_scheme)]) -> dict[str, Any]:
        """The caller (the gateway has verified the token already)."""
        if token is None:
            raise Unauthorized("A bearer token is required.")
        subject = jwt.decode(token, options={"verify_signature": False})["sub"]
        return {"id": subject, "username": USERNAME, "roles": ["user"], "is_active": True}

    return app


@pytest.fixture
async def docs_gateway(tokens: TokenFactory, redis_db: object) -> AsyncIterator[str]:
    # `redis_db` writes the revocation epoch, as auth would: without it the gateway refuses
    # every token (this test passed only after another test of the suite had written it).
    auth, users = Served(auth_double(tokens)), Served(users_double())
    await auth.start()
    await users.start()
    gateway = Served(create_app(gateway_settings({"auth": auth, "users": users})))
    await gateway.start()
    try:
        yield gateway.url
    finally:
        await gateway.stop()
        await users.stop()
        await auth.stop()


async def test_authorize_then_call_me_in_swagger_ui(docs_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=docs_gateway) as client:
        document = (await client.get("/api/openapi.json")).json()
    assert "/api/v1/users/me" in document["paths"]

    body, seen = await read_me_in_swagger_ui(docs_gateway + "/api/docs", USERNAME, PASSWORD)
    assert USER_ID in body
    # Every asset came from the gateway itself, none from a CDN.
    assert all(entry.split()[1].startswith(docs_gateway) for entry in seen), seen
