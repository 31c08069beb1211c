"""Refresh rotation, reuse detection, concurrent refreshes, expiry and account checks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from common.revocation import is_revoked, session_key

from .support import AuthHarness, claims_of
from .users_double import Account


async def test_refresh_rotates_the_token(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    response = await auth.refresh(pair["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    fresh = response.json()
    assert fresh["refresh_token"] != pair["refresh_token"]
    assert claims_of(fresh["access_token"])["sid"] == claims_of(pair["access_token"])["sid"]
    assert (await auth.refresh(fresh["refresh_token"])).status_code == 200


async def test_reused_refresh_token_revokes_session(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    rotated = (await auth.refresh(pair["refresh_token"])).json()
    reused = await auth.refresh(pair["refresh_token"])
    assert reused.status_code == 401
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.headers["www-authenticate"] == "Bearer"
    # The whole family is gone: the token the legitimate client holds no longer works either.
    assert (await auth.refresh(rotated["refresh_token"])).status_code == 401
    sid = claims_of(pair["access_token"])["sid"]
    assert await auth.redis.exists(session_key(sid))


async def test_concurrent_refreshes_exactly_one_succeeds(
    auth: AuthHarness, account: Account
) -> None:
    """Ten races: the losers (each revokes the session) once deadlocked with each other now and
    then (a 500), a losing claim holding the token's lock while revoking the others."""
    for _ in range(10):
        pair = await auth.login(account)
        responses = await asyncio.gather(*(auth.refresh(pair["refresh_token"]) for _ in range(20)))
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200] + [401] * 19


async def test_concurrent_reuses_of_an_old_token_all_fail_and_end_the_session(
    auth: AuthHarness, account: Account
) -> None:
    """Twenty revocations of one session at once, over its 151 tokens (each reuse revokes the
    session): each locks the tokens in one order, so none deadlocks another (a 500)."""
    pair = await auth.login(account)
    latest = pair["refresh_token"]
    for _ in range(150):
        latest = (await auth.refresh(latest)).json()["refresh_token"]
    reuses = await asyncio.gather(*(auth.refresh(pair["refresh_token"]) for _ in range(20)))
    assert sorted(response.status_code for response in reuses) == [401] * 20
    assert (await auth.refresh(latest)).status_code == 401


async def test_unknown_refresh_token_is_401(auth: AuthHarness) -> None:
    response = await auth.refresh("not-a-token-we-issued")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [{}, {"refresh_token": ""}, {"refresh_token": 5}, {"refresh_token": "x" * 513}, {"x": 1}],
)
async def test_malformed_refresh_body_is_422(auth: AuthHarness, body: object) -> None:
    response = await auth.client.post("/api/v1/auth/refresh", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_refresh_body_not_json_is_422(auth: AuthHarness) -> None:
    response = await auth.client.post(
        "/api/v1/auth/refresh", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_idle_session_expires(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    auth.users.ignore_token_times = True
    auth.clock.advance(seconds=auth.settings.refresh_idle_timeout + 1)
    response = await auth.refresh(pair["refresh_token"])
    assert response.status_code == 401


async def test_activity_keeps_a_session_alive_until_its_absolute_end(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    auth.users.ignore_token_times = True
    token = pair["refresh_token"]
    step = auth.settings.refresh_idle_timeout - 60
    while auth.clock.offset.total_seconds() + step < auth.settings.refresh_token_ttl:
        auth.clock.advance(seconds=step)
        response = await auth.refresh(token)
        assert response.status_code == 200
        token = response.json()["refresh_token"]
        assert response.json()["refresh_expires_in"] <= auth.settings.refresh_idle_timeout
    auth.clock.offset = timedelta(seconds=auth.settings.refresh_token_ttl + 1)
    assert (await auth.refresh(token)).status_code == 401


async def test_refresh_picks_up_role_changes(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    account.roles = ["admin"]
    fresh = (await auth.refresh(pair["refresh_token"])).json()
    claims = claims_of(fresh["access_token"])
    assert claims["roles"] == ["admin"]
    assert claims["scope"] == "clients:manage users:manage users:read"


async def test_deactivated_account_cannot_refresh(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    account.is_active = False
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401
    account.is_active = True
    # The session was revoked, not merely refused once.
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401


async def test_deleted_account_cannot_refresh(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    del auth.users.accounts[account.user_id]
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401


async def test_users_down_during_refresh_is_503_and_keeps_the_token(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    auth.users.down = True
    response = await auth.refresh(pair["refresh_token"])
    assert response.status_code == 503
    auth.users.down = False
    # Nothing was committed: the same token still works (no false reuse alarm).
    assert (await auth.refresh(pair["refresh_token"])).status_code == 200


async def test_refresh_of_a_session_opened_before_a_password_change_is_refused(
    auth: AuthHarness, account: Account
) -> None:
    """users' answer says when the password last changed: sessions opened before it end at
    their next refresh even if the password-changed event never arrives (broker down)."""
    phone = await auth.login(account)
    laptop = await auth.login(account)
    account.credentials_changed_at = datetime.now(UTC)  # and no event is delivered
    refused = await auth.refresh(phone["refresh_token"])
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    # Every session opened before the change ends, and the access tokens issued before it too.
    assert (await auth.refresh(laptop["refresh_token"])).status_code == 401
    claims = claims_of(laptop["access_token"])
    assert await is_revoked(auth.redis, claims["sid"], account.user_id, claims["iat"])
    later = await auth.login(account)
    assert (await auth.refresh(later["refresh_token"])).status_code == 200
