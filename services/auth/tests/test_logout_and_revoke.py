"""Logout and RFC 7009 revocation of each token type."""

from __future__ import annotations

import pytest
from common.revocation import is_revoked, session_key

from .support import AuthHarness, bearer, claims_of, introspect_as_gateway
from .users_double import Account


async def test_logout_ends_the_session(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    response = await auth.client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 204
    assert response.content == b""
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401
    claims = claims_of(pair["access_token"])
    assert await is_revoked(auth.redis, claims["sid"], claims["sub"], claims["iat"])
    assert (await introspect_as_gateway(auth, pair["access_token"])) == {"active": False}


async def test_logout_with_refresh_token_of_another_own_session(
    auth: AuthHarness, account: Account
) -> None:
    first = await auth.login(account)
    second = await auth.login(account)
    response = await auth.client.post(
        "/api/v1/auth/logout",
        headers=bearer(first["access_token"]),
        json={"refresh_token": second["refresh_token"]},
    )
    assert response.status_code == 204
    assert (await auth.refresh(second["refresh_token"])).status_code == 401


async def test_logout_ignores_another_users_refresh_token(auth: AuthHarness) -> None:
    alice, bob = auth.users.add(), auth.users.add()
    alice_pair, bob_pair = await auth.login(alice), await auth.login(bob)
    response = await auth.client.post(
        "/api/v1/auth/logout",
        headers=bearer(alice_pair["access_token"]),
        json={"refresh_token": bob_pair["refresh_token"]},
    )
    assert response.status_code == 204
    assert (await auth.refresh(bob_pair["refresh_token"])).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic abc"}],
)
async def test_logout_without_a_valid_token_is_401(
    auth: AuthHarness, headers: dict[str, str]
) -> None:
    response = await auth.client.post("/api/v1/auth/logout", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_logout_with_malformed_body_is_422(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    response = await auth.client.post(
        "/api/v1/auth/logout", headers=bearer(pair["access_token"]), json={"refresh_token": 7}
    )
    assert response.status_code == 422


async def revoke(auth: AuthHarness, data: dict[str, str]) -> None:
    response = await auth.client.post("/api/v1/auth/revoke", data=data)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_revoking_a_refresh_token_ends_its_session(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    await revoke(auth, {"token": pair["refresh_token"], "token_type_hint": "refresh_token"})
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401
    assert await auth.redis.exists(session_key(claims_of(pair["access_token"])["sid"]))


async def test_revoking_an_access_token_ends_its_session(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    await revoke(auth, {"token": pair["access_token"]})
    assert await auth.redis.exists(session_key(claims_of(pair["access_token"])["sid"]))
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", "something_else"])
async def test_the_hint_is_only_a_hint(auth: AuthHarness, account: Account, hint: str) -> None:
    pair = await auth.login(account)
    await revoke(auth, {"token": pair["refresh_token"], "token_type_hint": hint})
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "x" * 9000, "eyJhbGciOiJub25lIn0.e30."])
async def test_revoking_unknown_tokens_is_200(auth: AuthHarness, token: str) -> None:
    await revoke(auth, {"token": token})


async def test_revoke_without_token_is_invalid_request(auth: AuthHarness) -> None:
    response = await auth.client.post("/api/v1/auth/revoke", data={"token_type_hint": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_revoke_with_wrong_client_secret_is_invalid_client(auth: AuthHarness) -> None:
    response = await auth.client.post(
        "/api/v1/auth/revoke", data={"token": "x"}, auth=("gateway", "wrong")
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
