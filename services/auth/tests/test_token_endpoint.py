"""The RFC 6749 token endpoint: both grants and every error code (§5.2, RFC 8707)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from .support import INTERNAL_SECRET, AuthHarness, claims_of
from .users_double import Account

URL = "/api/v1/auth/token"


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert set(body) == {"error", "error_description"}


async def test_refresh_token_grant(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    response = await auth.client.post(
        URL, data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] != pair["refresh_token"]


async def test_reused_refresh_token_is_invalid_grant_and_ends_the_session(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    data = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    rotated = (await auth.client.post(URL, data=data)).json()
    assert_oauth_error(await auth.client.post(URL, data=data), 400, "invalid_grant")
    again = {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}
    assert_oauth_error(await auth.client.post(URL, data=again), 400, "invalid_grant")


async def test_client_credentials_with_basic(auth: AuthHarness) -> None:
    response = await auth.client.post(
        URL,
        data={"grant_type": "client_credentials", "audience": "users"},
        auth=("notifier", INTERNAL_SECRET),
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    claims = claims_of(body["access_token"])
    assert claims["aud"] == "users"
    assert claims["sub"] == claims["client_id"] == "notifier"
    assert "sid" not in claims
    assert claims["scope"] == body["scope"] == "users:authorization"


async def test_client_credentials_with_form_fields_and_resource(auth: AuthHarness) -> None:
    response = await auth.client.post(
        URL,
        data={
            "grant_type": "client_credentials",
            "client_id": "gateway",
            "client_secret": INTERNAL_SECRET,
            "resource": "auth",
            "scope": "tokens:introspect",
        },
    )
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["aud"] == "auth"


async def test_client_credentials_defaults_to_the_only_audience(auth: AuthHarness) -> None:
    response = await auth.client.post(
        URL, data={"grant_type": "client_credentials"}, auth=("gateway", INTERNAL_SECRET)
    )
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["aud"] == "auth"


async def test_blank_scope_means_the_default_scope(auth: AuthHarness) -> None:
    response = await auth.client.post(
        URL,
        data={"grant_type": "client_credentials", "scope": "   "},
        auth=("gateway", INTERNAL_SECRET),
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "tokens:introspect"


def basic(raw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        # invalid_request
        ({"data": {}}, 400, "invalid_request"),
        ({"data": {"grant_type": "refresh_token"}}, 400, "invalid_request"),
        ({"json": {"grant_type": "refresh_token", "refresh_token": "x"}}, 400, "invalid_request"),
        (
            {
                "content": b"grant_type=a&grant_type=b",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
            "invalid_request",
        ),
        (
            {
                "data": {"grant_type": "client_credentials", "client_secret": INTERNAL_SECRET},
                "auth": ("gateway", INTERNAL_SECRET),
            },
            400,
            "invalid_request",
        ),
        (
            {
                "data": {
                    "grant_type": "client_credentials",
                    "audience": "users",
                    "resource": "auth",
                },
                "auth": ("gateway", INTERNAL_SECRET),
            },
            400,
            "invalid_target",
        ),
        # invalid_client
        ({"data": {"grant_type": "client_credentials"}}, 401, "invalid_client"),
        (
            {"data": {"grant_type": "client_credentials"}, "auth": ("gateway", "wrong")},
            401,
            "invalid_client",
        ),
        (
            {"data": {"grant_type": "client_credentials"}, "auth": ("nobody", INTERNAL_SECRET)},
            401,
            "invalid_client",
        ),
        (
            {
                "data": {"grant_type": "client_credentials"},
                "headers": {"Authorization": "Basic @@"},
            },
            401,
            "invalid_client",
        ),
        (
            {"data": {"grant_type": "client_credentials"}, "headers": basic("no-colon")},
            401,
            "invalid_client",
        ),
        (
            {"data": {"grant_type": "client_credentials", "client_secret": "s"}},
            401,
            "invalid_client",
        ),
        (
            {"data": {"grant_type": "client_credentials"}, "auth": ("gateway", "x" * 600)},
            401,
            "invalid_client",
        ),
        # invalid_grant
        (
            {"data": {"grant_type": "refresh_token", "refresh_token": "unknown"}},
            400,
            "invalid_grant",
        ),
        (
            {"data": {"grant_type": "refresh_token", "refresh_token": "x" * 600}},
            400,
            "invalid_grant",
        ),
        # unauthorized_client
        (
            {
                "data": {"grant_type": "refresh_token", "refresh_token": "x"},
                "auth": ("gateway", INTERNAL_SECRET),
            },
            400,
            "unauthorized_client",
        ),
        # unsupported_grant_type
        (
            {"data": {"grant_type": "password", "username": "a", "password": "b"}},
            400,
            "unsupported_grant_type",
        ),
        (
            {"data": {"grant_type": "urn:ietf:params:oauth:grant-type:device_code"}},
            400,
            "unsupported_grant_type",
        ),
        # authorization_code (API.md §13) names its client: none named is invalid_client
        (
            {"data": {"grant_type": "authorization_code", "code": "c"}},
            401,
            "invalid_client",
        ),
        # invalid_scope
        (
            {
                "data": {"grant_type": "client_credentials", "scope": "users:manage"},
                "auth": ("gateway", INTERNAL_SECRET),
            },
            400,
            "invalid_scope",
        ),
        # invalid_target
        (
            {
                "data": {"grant_type": "client_credentials", "audience": "users"},
                "auth": ("gateway", INTERNAL_SECRET),
            },
            400,
            "invalid_target",
        ),
        (
            {
                "data": {"grant_type": "client_credentials", "audience": "gatehouse-api"},
                "auth": ("notifier", INTERNAL_SECRET),
            },
            400,
            "invalid_target",
        ),
    ],
)
async def test_token_endpoint_errors(
    auth: AuthHarness, kwargs: dict[str, Any], status: int, error: str
) -> None:
    response = await auth.client.post(URL, **kwargs)
    assert_oauth_error(response, status, error)
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


async def test_expired_session_is_invalid_grant(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    auth.users.ignore_token_times = True
    auth.clock.advance(seconds=auth.settings.refresh_token_ttl + 1)
    response = await auth.client.post(
        URL, data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    )
    assert_oauth_error(response, 400, "invalid_grant")


async def test_users_down_on_token_endpoint_is_503(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    auth.users.down = True
    response = await auth.client.post(
        URL, data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    )
    assert response.status_code == 503
