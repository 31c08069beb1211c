"""RFC 7662 introspection: who may call it, and what it says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from auth.revocation.repository import raise_user_not_before

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
