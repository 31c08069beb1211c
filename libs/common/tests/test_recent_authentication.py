"""The recent-authentication dependency (RFC 9470, API.md §9) and ADMIN_REQUIRES_MFA in the
permission check: the exact challenges, rendered as problem+json by the one error handler."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from common.app import create_service_app
from common.security import (
    CurrentPrincipal,
    Principal,
    RecentPrincipal,
    ensure_recent_authentication,
    require_permission,
    require_recent_authentication,
)
from common.settings import ServiceSettings
from common.state import keep_state
from common.testing import AUDIENCE, ISSUER, TokenFactory
from common.tokens import JwksCache, TokenVerifier
from fastapi import Depends, FastAPI, Request

STALE = 'Bearer error="insufficient_user_authentication", max_age=300'
NO_MFA = 'Bearer error="insufficient_user_authentication", acr_values="mfa"'


def build_app(factory: TokenFactory, settings: ServiceSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        verifier = TokenVerifier(JwksCache(factory.fetcher()), issuer=ISSUER, audience=AUDIENCE)
        keep_state(app, None, token_verifier=verifier)
        yield

    app = create_service_app("sample", settings, lifespan=lifespan)

    @app.post("/sensitive")
    async def sensitive(principal: RecentPrincipal) -> dict[str, Any]:
        return {"auth_time": principal.auth_time, "amr": list(principal.amr)}

    @app.post("/very-sensitive")
    async def very_sensitive(
        _principal: Annotated[Principal, Depends(require_recent_authentication(max_age=10))],
    ) -> dict[str, bool]:
        return {"ok": True}

    @app.post("/manage")
    async def manage(
        _principal: Annotated[Principal, Depends(require_recent_authentication("users:manage"))],
    ) -> dict[str, bool]:
        return {"ok": True}

    @app.post("/sometimes")
    async def sometimes(
        request: Request, principal: CurrentPrincipal, strict: bool = False
    ) -> dict[str, bool]:
        if strict:
            ensure_recent_authentication(request, principal)
        return {"ok": True}

    @app.get("/admin")
    async def admin(
        principal: Annotated[Principal, Depends(require_permission("users:read"))],
    ) -> dict[str, bool]:
        return {"ok": principal.can("users:read")}

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"scopes": sorted(principal.scopes), "can_read": principal.can("users:read")}

    return app


@asynccontextmanager
async def serving(factory: TokenFactory, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(factory, ServiceSettings(**settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.fixture
async def client(token_factory: TokenFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(token_factory) as client:
        yield client


def bearer(factory: TokenFactory, **claims: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {factory.access_token(str(uuid.uuid4()), **claims)}"}


def ago(seconds: int) -> int:
    return int(time.time()) - seconds


async def test_a_fresh_login_passes(client: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    auth_time = ago(5)
    response = await client.post(
        "/sensitive", headers=bearer(token_factory, auth_time=auth_time, amr=["pwd"])
    )
    assert response.status_code == 200
    assert response.json() == {"auth_time": auth_time, "amr": ["pwd"]}


@pytest.mark.parametrize("claims", [{"auth_time": ago(301)}, {"auth_time": ago(86400)}, {}])
async def test_a_stale_or_missing_login_gets_the_challenge(
    client: httpx.AsyncClient, token_factory: TokenFactory, claims: dict[str, Any]
) -> None:
    response = await client.post("/sensitive", headers=bearer(token_factory, amr=["pwd"], **claims))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == STALE
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 401
    assert body["detail"] == "More recent authentication is required"
    assert body["instance"] == "/sensitive"


@pytest.mark.parametrize("auth_time", ["12345", True, None, [1], float("nan")])
async def test_a_malformed_auth_time_is_an_invalid_token(
    client: httpx.AsyncClient, token_factory: TokenFactory, auth_time: object
) -> None:
    response = await client.post("/sensitive", headers=bearer(token_factory, auth_time=auth_time))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_no_token_is_the_plain_challenge(client: httpx.AsyncClient) -> None:
    response = await client.post("/sensitive")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_the_max_age_comes_from_the_settings(token_factory: TokenFactory) -> None:
    async with serving(token_factory, step_up_max_age=60) as client:
        fresh = await client.post("/sensitive", headers=bearer(token_factory, auth_time=ago(30)))
        stale = await client.post("/sensitive", headers=bearer(token_factory, auth_time=ago(90)))
    assert fresh.status_code == 200
    assert stale.status_code == 401
    assert stale.headers["www-authenticate"].endswith(", max_age=60")


async def test_a_route_may_ask_for_its_own_max_age(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await client.post(
        "/very-sensitive", headers=bearer(token_factory, auth_time=ago(30))
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].endswith(", max_age=10")


async def test_with_a_permission_the_403_comes_before_the_recency(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    lacking = await client.post("/manage", headers=bearer(token_factory, auth_time=ago(999)))
    assert lacking.status_code == 403
    stale = bearer(token_factory, auth_time=ago(999), scope="users:manage")
    assert (await client.post("/manage", headers=stale)).headers["www-authenticate"] == STALE
    fresh = bearer(token_factory, auth_time=ago(1), scope="users:manage")
    assert (await client.post("/manage", headers=fresh)).status_code == 200


async def test_a_route_can_ask_only_for_some_requests(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    headers = bearer(token_factory, auth_time=ago(999))
    assert (await client.post("/sometimes", headers=headers)).status_code == 200
    strict = await client.post("/sometimes?strict=true", headers=headers)
    assert strict.status_code == 401
    assert strict.headers["www-authenticate"] == STALE


async def test_service_tokens_are_no_user(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await client.post("/sensitive", headers=bearer(token_factory, session_id=None))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_without_admin_requires_mfa_a_password_login_is_enough(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    headers = bearer(token_factory, scope="users:read", auth_time=ago(1), amr=["pwd"])
    assert (await client.get("/admin", headers=headers)).status_code == 200


@pytest.mark.parametrize("amr", [["pwd"], [], ["pwd", "sms"], None])
async def test_admin_requires_mfa_withholds_the_admin_permissions(
    token_factory: TokenFactory, amr: list[str] | None
) -> None:
    claims: dict[str, Any] = {
        "scope": "users:read users:manage clients:manage other:thing",
        "auth_time": ago(1),
    }
    if amr is not None:
        claims["amr"] = amr
    async with serving(token_factory, admin_requires_mfa=True) as client:
        admin = await client.get("/admin", headers=bearer(token_factory, **claims))
        me = await client.get("/me", headers=bearer(token_factory, **claims))
    assert admin.status_code == 401
    assert admin.headers["www-authenticate"] == NO_MFA
    assert admin.headers["content-type"] == "application/problem+json"
    # Self-or-admin checks see no admin either.
    assert me.json() == {"scopes": ["other:thing"], "can_read": False}


@pytest.mark.parametrize("factor", ["otp", "hwk", "swk", "mfa"])
async def test_admin_requires_mfa_lets_second_factors_through(
    token_factory: TokenFactory, factor: str
) -> None:
    headers = bearer(token_factory, scope="users:read", auth_time=ago(1), amr=["pwd", factor])
    async with serving(token_factory, admin_requires_mfa=True) as client:
        assert (await client.get("/admin", headers=headers)).status_code == 200


async def test_admin_requires_mfa_still_403s_a_token_without_the_permission(
    token_factory: TokenFactory,
) -> None:
    async with serving(token_factory, admin_requires_mfa=True) as client:
        response = await client.get("/admin", headers=bearer(token_factory, amr=["pwd"]))
    assert response.status_code == 403
