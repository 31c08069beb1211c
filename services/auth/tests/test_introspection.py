"""RFC 7662 introspection: who may call it, and what it says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from auth.revocation.repository import raise_user_not_before
from auth.sessions.models import LoginSession
from common.hot import HotRoute
from common.testing import without_hot_routes
from sqlalchemy import update

from .support import INTERNAL_SECRET, AuthHarness, bearer, claims_of, introspect_as_gateway
from .users_double import Account

URL = "/internal/v1/introspect"


async def service_token(auth: AuthHarness, client_id: str, audience: str) -> str:
    response = await auth.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "audience": audience},
        auth=(client_id, INTERNAL_SECRET),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_active_access_token(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    body = await introspect_as_gateway(auth, pair["access_token"])
    claims = claims_of(pair["access_token"])
    assert body["active"] is True
    assert body["sub"] == account.user_id
    assert body["sid"] == claims["sid"]
    assert body["client_id"] == "gatehouse"
    assert body["exp"] == claims["exp"]
    assert body["token_type"] == "Bearer"


async def test_active_refresh_token(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    body = await introspect_as_gateway(auth, pair["refresh_token"])
    assert body["active"] is True
    assert body["token_type"] == "refresh_token"
    assert body["sub"] == account.user_id


async def test_used_refresh_token_is_inactive(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    assert (await auth.refresh(pair["refresh_token"])).status_code == 200
    assert await introspect_as_gateway(auth, pair["refresh_token"]) == {"active": False}


async def test_service_token_is_active(auth: AuthHarness) -> None:
    token = await service_token(auth, "notifier", "users")
    body = await introspect_as_gateway(auth, token)
    assert body["active"] is True
    assert body["client_id"] == "notifier"
    assert body["aud"] == "users"
    assert "sid" not in body


async def test_caller_may_use_a_service_token(auth: AuthHarness, account: Account) -> None:
    caller = await service_token(auth, "gateway", "auth")
    pair = await auth.login(account)
    response = await auth.client.post(
        URL, data={"token": pair["access_token"]}, headers={"Authorization": f"Bearer {caller}"}
    )
    assert response.status_code == 200
    assert response.json()["active"] is True


async def test_service_token_without_the_scope_is_403(auth: AuthHarness) -> None:
    # notifier's tokens are for users, so auth refuses them as 401; a user token is 403-or-401.
    caller = await service_token(auth, "notifier", "users")
    response = await auth.client.post(
        URL, data={"token": "x"}, headers={"Authorization": f"Bearer {caller}"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_client_without_the_scope_is_403(auth: AuthHarness) -> None:
    response = await auth.client.post(URL, data={"token": "x"}, auth=("notifier", INTERNAL_SECRET))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_user_token_cannot_introspect(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    response = await auth.client.post(
        URL,
        data={"token": pair["access_token"]},
        headers={"Authorization": f"Bearer {pair['access_token']}"},
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "auth_args",
    [
        {},
        {"auth": ("gateway", "wrong")},
        {"auth": ("nobody", INTERNAL_SECRET)},
        {"headers": {"Authorization": "Basic !!!"}},
        {"headers": {"Authorization": "Bearer not.a.jwt"}},
    ],
)
async def test_unauthenticated_callers_are_401(
    auth: AuthHarness, auth_args: dict[str, Any]
) -> None:
    response = await auth.client.post(URL, data={"token": "x"}, **auth_args)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_missing_token_is_400(auth: AuthHarness) -> None:
    response = await auth.client.post(URL, data={}, auth=("gateway", INTERNAL_SECRET))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "....",
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",
        "x" * 10000,
        "ü" * 50,
    ],
)
async def test_bad_tokens_are_inactive_and_nothing_else(auth: AuthHarness, token: str) -> None:
    assert await introspect_as_gateway(auth, token) == {"active": False}


async def test_expired_access_token_is_inactive(auth: AuthHarness, account: Account) -> None:
    auth.clock.advance(seconds=-3600)
    auth.users.ignore_token_times = True
    pair = await auth.login(account)
    auth.clock.offset = auth.clock.offset * 0
    assert await introspect_as_gateway(auth, pair["access_token"]) == {"active": False}


async def test_access_token_of_ended_user_is_inactive(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    claims = claims_of(pair["access_token"])
    async with auth.state.db.sessionmaker() as db, db.begin():
        moment = datetime.fromtimestamp(claims["iat"] + 1, UTC)
        await raise_user_not_before(db, account.user_id, moment)
    assert await introspect_as_gateway(auth, pair["access_token"]) == {"active": False}


async def test_a_remembered_token_goes_inactive_when_its_session_ends(
    auth: AuthHarness, account: Account
) -> None:
    """The verified-token cache spares the signature check only: a logout after an active answer
    makes the next answer inactive."""
    pair = await auth.login(account)
    assert (await introspect_as_gateway(auth, pair["access_token"]))["active"] is True
    response = await auth.client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 204
    assert await introspect_as_gateway(auth, pair["access_token"]) == {"active": False}


async def test_a_remembered_token_goes_inactive_when_its_user_is_ended(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    assert (await introspect_as_gateway(auth, pair["access_token"]))["active"] is True
    claims = claims_of(pair["access_token"])
    async with auth.state.db.sessionmaker() as db, db.begin():
        moment = datetime.fromtimestamp(claims["iat"] + 1, UTC)
        await raise_user_not_before(db, account.user_id, moment)
    assert await introspect_as_gateway(auth, pair["access_token"]) == {"active": False}


async def test_answers_carry_exactly_the_token_fields(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    claims = claims_of(pair["access_token"])
    assert await introspect_as_gateway(auth, pair["access_token"]) == {
        "active": True,
        "token_type": "Bearer",
        "scope": " ".join(sorted(claims["scope"].split())),
        "client_id": "gatehouse",
        "sub": account.user_id,
        "aud": claims["aud"],
        "iss": claims["iss"],
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims.get("nbf"),
        "jti": claims["jti"],
        "roles": claims["roles"],
        "sid": claims["sid"],
    }
    logged_in = int(auth.clock().timestamp())
    body = await introspect_as_gateway(auth, pair["refresh_token"])
    issued = body.pop("iat")
    assert issued in (logged_in - 1, logged_in)
    assert body.pop("exp") == issued + auth.settings.refresh_idle_timeout
    assert body == {
        "active": True,
        "token_type": "refresh_token",
        "client_id": "gatehouse",
        "sub": account.user_id,
        "sid": claims["sid"],
    }


async def test_refresh_token_of_an_ended_session_is_inactive(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    response = await auth.client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 204
    assert await introspect_as_gateway(auth, pair["refresh_token"]) == {"active": False}


@pytest.mark.parametrize(
    ("column", "seconds_from_now"),
    [("revoked_at", 0), ("expires_at", -1)],
    ids=["revoked", "ended"],
)
async def test_refresh_token_is_inactive_once_its_session_row_says_so(
    auth: AuthHarness, account: Account, column: str, seconds_from_now: int
) -> None:
    """The session's own row counts (revoked, or past its end), whatever marked the token (here
    nothing did)."""
    pair = await auth.login(account)
    sid = claims_of(pair["access_token"])["sid"]
    moment = auth.clock() + timedelta(seconds=seconds_from_now)
    async with auth.state.db.sessionmaker() as db, db.begin():
        await db.execute(
            update(LoginSession).where(LoginSession.id == sid).values({column: moment})
        )
    assert await introspect_as_gateway(auth, pair["refresh_token"]) == {"active": False}


async def test_refresh_token_past_its_idle_end_is_inactive(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    auth.clock.advance(seconds=auth.settings.refresh_idle_timeout - 5)
    assert (await introspect_as_gateway(auth, pair["refresh_token"]))["active"] is True
    auth.clock.advance(seconds=10)
    assert await introspect_as_gateway(auth, pair["refresh_token"]) == {"active": False}


async def test_the_plain_asgi_introspection_answers_as_the_fastapi_route(
    auth: AuthHarness, account: Account
) -> None:
    """auth.hot answers introspection before FastAPI (a `common.hot.HotRoute`): the same
    status, body bytes and headers as the FastAPI route itself, for every kind of answer."""
    hot_paths = [m.kwargs["path"] for m in auth.app.user_middleware if m.cls is HotRoute]  # type: ignore[comparison-overlap]
    assert URL in hot_paths
    pair = await auth.login(account)
    caller = await service_token(auth, "gateway", "auth")
    gateway = {"auth": ("gateway", INTERNAL_SECRET)}
    cases: list[dict[str, Any]] = [
        {"data": {"token": pair["access_token"], "token_type_hint": "access_token"}, **gateway},
        {"data": {"token": pair["refresh_token"]}, **gateway},
        {"data": {"token": "garbage"}, **gateway},
        {"data": {}, **gateway},
        {"data": {"token": "x"}},
        {"data": {"token": "x"}, "auth": ("gateway", "wrong")},
        {"data": {"token": "x"}, "auth": ("notifier", INTERNAL_SECRET)},
        {"data": {"token": pair["access_token"]}, "headers": {"Authorization": f"Bearer {caller}"}},
        {"data": {"token": "x"}, "headers": {"Authorization": f"Bearer {pair['access_token']}"}},
        {"content": b"{}", "headers": {"Content-Type": "application/json"}, **gateway},
    ]
    statuses = []
    transport = httpx.ASGITransport(app=without_hot_routes(auth.app))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as plain:
        for index, case in enumerate(cases):
            same_id = {"X-Request-ID": f"same-{index}"}  # the one header that would differ
            request = {**case, "headers": {**case.get("headers", {}), **same_id}}
            hot = await auth.client.post(URL, **request)
            route = await plain.post(URL, **request)
            assert (hot.status_code, hot.content) == (route.status_code, route.content), index
            assert hot.headers.multi_items() == route.headers.multi_items()
            statuses.append(hot.status_code)
    assert statuses == [200, 200, 200, 400, 401, 401, 403, 200, 401, 400]
