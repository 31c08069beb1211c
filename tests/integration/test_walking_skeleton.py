"""One real path end to end, through the gateway: register → login → /users/me, the access token
verified against the published JWKS, the welcome email delivered once, sessions ending for real."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import jwt
from common.testing import SmtpSink

from .platform import Platform
from .support import (
    PASSWORD,
    bearer,
    email_to,
    login,
    new_account,
    register,
    tokens_for,
    wait_until_refused,
)


async def test_register_login_me_through_the_gateway(
    gateway: httpx.AsyncClient, platform: Platform
) -> None:
    account = new_account()
    user = await register(gateway, account)
    assert user["username"] == account["username"]
    assert user["roles"] == ["user"]
    assert "password" not in str(user).lower()

    pair = await tokens_for(gateway, account)
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] > 0
    assert pair["refresh_expires_in"] > 0

    me = await gateway.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"]

    # Login by email too, case-insensitively.
    by_email = await login(gateway, account["email"].upper(), PASSWORD)
    assert by_email.status_code == 200, by_email.text

    # The access token is an RFC 9068 RS256 token that the published JWKS verifies.
    jwks = await gateway.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    keys = {key["kid"]: key for key in jwks.json()["keys"]}
    public_key = jwt.PyJWK(keys[header["kid"]]).key
    claims = jwt.decode(
        pair["access_token"],
        public_key,
        algorithms=["RS256"],
        audience=platform.env["AUDIENCE"],
        issuer=platform.env["ISSUER"],
    )
    assert claims["sub"] == user["id"]
    assert claims["sid"]
    assert claims["exp"] - claims["iat"] <= 30 * 60


async def test_internal_paths_are_never_routed(gateway: httpx.AsyncClient) -> None:
    for path in (
        "/internal/v1/credentials/verify",
        "/internal/v1/users/00000000-0000-0000-0000-000000000000/authorization",
        "/api/v1/../internal/v1/credentials/verify",
        "/%2Finternal/v1/credentials/verify",
    ):
        response = await gateway.post(path, json={"login": "x", "password": "y"})
        assert response.status_code == 404, (path, response.text)


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    gateway: httpx.AsyncClient,
) -> None:
    account = new_account()
    await register(gateway, account)
    wrong = await login(gateway, account["username"], "not the password at all")
    unknown = await login(gateway, f"nobody_{uuid.uuid4().hex[:8]}", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.headers["content-type"].startswith("application/problem+json")

    def comparable(response: httpx.Response) -> dict[str, Any]:
        body: dict[str, Any] = response.json()
        body.pop("instance", None)
        return body

    assert comparable(wrong) == comparable(unknown)


async def test_bad_registration_is_a_problem_not_a_crash(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/api/v1/users/",
        json={"email": "not-an-email", "username": "x", "password": "short", "full_name": ""},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"email", "username", "password", "full_name"} <= {f.split(".")[-1] for f in fields}

    account = new_account()
    await register(gateway, account)
    taken = await gateway.post("/api/v1/users/", json={**account, "email": "x" + account["email"]})
    assert taken.status_code == 409


async def test_welcome_email_is_sent_once(gateway: httpx.AsyncClient, smtp_sink: SmtpSink) -> None:
    account = new_account()
    user = await register(gateway, account)
    await email_to(smtp_sink, account["email"], "")
    await asyncio.sleep(1.0)  # a duplicate would arrive about now
    mine = [m for m in smtp_sink.handler.messages if account["email"] in str(m["To"])]
    assert len(mine) == 1
    body = mine[0].get_body(preferencelist=("plain",))
    assert body is not None
    assert account["username"] in body.get_content() or "Ada" in body.get_content()
    assert user["id"]


async def test_logout_ends_the_session_at_the_gateway(gateway: httpx.AsyncClient) -> None:
    account = new_account()
    await register(gateway, account)
    pair = await tokens_for(gateway, account)
    logout = await gateway.post(
        "/api/v1/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=bearer(pair["access_token"]),
    )
    assert logout.status_code == 204, logout.text
    refused = await gateway.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert refused.status_code == 401
    assert "invalid_token" in refused.headers["www-authenticate"]
    again = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert again.status_code == 401


async def test_refresh_rotates_and_reuse_ends_the_session(gateway: httpx.AsyncClient) -> None:
    account = new_account()
    await register(gateway, account)
    first = await tokens_for(gateway, account)
    second = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]

    reuse = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reuse.status_code == 401
    after = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert after.status_code == 401
    await wait_until_refused(gateway, rotated["access_token"])


async def test_password_change_ends_every_session_within_five_seconds(
    gateway: httpx.AsyncClient,
) -> None:
    account = new_account()
    await register(gateway, account)
    laptop = await tokens_for(gateway, account)
    phone = await tokens_for(gateway, account)
    changed = await gateway.put(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "an entirely new passphrase 7"},
        headers=bearer(laptop["access_token"]),
    )
    assert changed.status_code == 204, changed.text
    await wait_until_refused(gateway, phone["access_token"])
    refresh = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    assert refresh.status_code == 401
    old = await login(gateway, account["username"], PASSWORD)
    assert old.status_code == 401
    new = await login(gateway, account["username"], "an entirely new passphrase 7")
    assert new.status_code == 200


async def test_every_service_reports_ready_and_metrics(platform: Platform) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        for service in ("gateway", "auth", "users", "notifier"):
            ready = await client.get(platform.url(service) + "/ready")
            assert ready.status_code == 200, (service, ready.text)
            metrics = await client.get(platform.url(service) + "/metrics")
            assert metrics.status_code == 200
            assert "gatehouse_http_requests_total" in metrics.text, service
