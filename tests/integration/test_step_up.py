"""Step-up through the gateway (API.md §9, RFC 9470): a login older than STEP_UP_MAX_AGE (10 s in
this platform) cannot change the email, a refresh does not make it recent again, and the
gateway hands users' 401 challenge over untouched; a new login can."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt

from .support import STEP_UP_MAX_AGE, bearer, new_account, register, tokens_for

CHALLENGE = f'Bearer error="insufficient_user_authentication", max_age={STEP_UP_MAX_AGE}'


def auth_time_of(access_token: str) -> int:
    claims = jwt.decode(access_token, options={"verify_signature": False})
    assert claims["amr"] == ["pwd"]
    auth_time: int = claims["auth_time"]
    return auth_time


async def test_an_email_change_needs_a_recent_login(gateway: httpx.AsyncClient) -> None:
    account = new_account()
    await register(gateway, account)
    pair = await tokens_for(gateway, account)
    logged_in_at = auth_time_of(pair["access_token"])
    fresh_email = "fresh." + account["email"]
    changed = await gateway.patch(
        "/api/v1/users/me", json={"email": fresh_email}, headers=bearer(pair["access_token"])
    )
    assert changed.status_code == 200, changed.text

    await asyncio.sleep(max(0.0, logged_in_at + STEP_UP_MAX_AGE + 1.5 - time.time()))
    refreshed = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    stale_token = refreshed.json()["access_token"]
    assert auth_time_of(stale_token) == logged_in_at

    refused = await gateway.patch(
        "/api/v1/users/me", json={"email": "stale." + account["email"]}, headers=bearer(stale_token)
    )
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"] == CHALLENGE
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 401
    me = await gateway.get("/api/v1/users/me", headers=bearer(stale_token))
    # The accepted change waits for its link (API.md §8); the refused one changed nothing.
    assert me.json()["pending_email"] == fresh_email
    assert me.json()["email"] == account["email"]

    # A name is no sensitive change: the stale login is enough.
    renamed = await gateway.patch(
        "/api/v1/users/me", json={"full_name": "Ada King"}, headers=bearer(stale_token)
    )
    assert renamed.status_code == 200, renamed.text

    again = await tokens_for(gateway, account)
    assert auth_time_of(again["access_token"]) > logged_in_at
    final = await gateway.patch(
        "/api/v1/users/me",
        json={"email": "again." + account["email"]},
        headers=bearer(again["access_token"]),
    )
    assert final.status_code == 200, final.text
    assert final.json()["pending_email"] == "again." + account["email"]
