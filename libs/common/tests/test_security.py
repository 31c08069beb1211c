from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from common.app import create_service_app
from common.security import CurrentPrincipal, Principal, require_permission
from common.settings import ServiceSettings
from common.state import keep_state
from common.testing import AUDIENCE, ISSUER, TokenFactory
from common.tokens import JwksCache, TokenVerifier
from fastapi import Depends, FastAPI


def build_app(factory: TokenFactory) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        verifier = TokenVerifier(JwksCache(factory.fetcher()), issuer=ISSUER, audience=AUDIENCE)
        keep_state(app, None, token_verifier=verifier)
        yield

    app = create_service_app("sample", ServiceSettings(), lifespan=lifespan)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user_id": str(principal.user_id)}

    @app.get("/admin")
    async def admin(
        principal: Annotated[Principal, Depends(require_permission("users:read"))],
    ) -> dict[str, bool]:
        return {"ok": principal.can("users:read")}

    return app


@pytest.fixture
async def client(token_factory: TokenFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(token_factory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_valid_user_token_reaches_the_route(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    user_id = str(uuid.uuid4())
    token = token_factory.access_token(user_id)
    response = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"user_id": user_id}


async def test_missing_token_is_401_with_plain_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Bearer a.b.c"]
)
async def test_bad_authorization_headers_are_401_invalid_token(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.get("/me", headers={"authorization": header})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_token_with_non_uuid_subject_is_refused(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    token = token_factory.access_token("not-a-uuid")
    response = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_service_token_is_not_a_user(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    token = token_factory.access_token(str(uuid.uuid4()), session_id=None)
    response = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_missing_permission_is_403(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    token = token_factory.access_token(str(uuid.uuid4()), scope="")
    response = await client.get("/admin", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_permission_in_scope_is_allowed(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    token = token_factory.access_token(str(uuid.uuid4()), scope="users:read")
    response = await client.get("/admin", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
