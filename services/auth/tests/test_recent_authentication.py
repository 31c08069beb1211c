"""`auth_time` and `amr` (RFC 9470, RFC 8176): set by a login, kept by every refresh."""

from __future__ import annotations

from auth.clock import epoch

from .support import INTERNAL_SECRET, AuthHarness, claims_of
from .users_double import Account


async def test_login_token_carries_auth_time_and_amr(auth: AuthHarness, account: Account) -> None:
    before = epoch(auth.clock())
    claims = claims_of((await auth.login(account))["access_token"])
    assert before <= claims["auth_time"] <= epoch(auth.clock())
    assert isinstance(claims["auth_time"], int)
    assert claims["amr"] == ["pwd"]


async def test_refresh_keeps_auth_time_and_amr(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    first = claims_of(pair["access_token"])
    auth.users.ignore_token_times = True
    auth.clock.advance(seconds=600)
    refreshed = (await auth.refresh(pair["refresh_token"])).json()
    auth.clock.advance(seconds=600)
    response = await auth.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
    )
    assert response.status_code == 200, response.text
    for token in (refreshed["access_token"], response.json()["access_token"]):
        claims = claims_of(token)
        assert claims["iat"] >= first["iat"] + 600
        assert claims["auth_time"] == first["auth_time"]
        assert claims["amr"] == ["pwd"]


async def test_a_new_login_renews_auth_time(auth: AuthHarness, account: Account) -> None:
    first = claims_of((await auth.login(account))["access_token"])
    auth.users.ignore_token_times = True
    auth.clock.advance(seconds=600)
    second = claims_of((await auth.login(account))["access_token"])
    assert second["auth_time"] >= first["auth_time"] + 600
    assert second["sid"] != first["sid"]


async def test_service_tokens_carry_neither(auth: AuthHarness) -> None:
    response = await auth.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "audience": "users"},
        auth=("notifier", INTERNAL_SECRET),
    )
    assert response.status_code == 200
    claims = claims_of(response.json()["access_token"])
    assert "auth_time" not in claims
    assert "amr" not in claims
