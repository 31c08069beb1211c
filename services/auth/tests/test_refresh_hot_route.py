"""auth.sessions.hot answers `POST /api/v1/auth/refresh` before FastAPI (a `common.hot.HotRoute`):
the same status, headers and body as the FastAPI route itself, for every kind of answer; a body
FastAPI would refuse is left to FastAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from auth.sessions import hot
from auth.sessions.schemas import RefreshRequest
from common.testing import without_hot_routes
from starlette.requests import Request

from .support import AuthHarness, claims_of
from .users_double import Account

URL = "/api/v1/auth/refresh"
# Claims that differ between any two tokens, or two sessions.
UNIQUE_CLAIMS = ("jti", "sid", "iat", "nbf", "exp", "auth_time")


@pytest.fixture
async def plain(auth: AuthHarness) -> AsyncIterator[httpx.AsyncClient]:
    """auth without its hot routes: every request through FastAPI's routing."""
    transport = httpx.ASGITransport(app=without_hot_routes(auth.app))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
        yield client


@pytest.fixture
def hot_bodies(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each request the hot route saw: whether it answered it itself (else FastAPI did)."""
    seen: list[bool] = []
    read = hot._refresh_request

    async def spy(request: Request) -> RefreshRequest | None:
        body = await read(request)
        seen.append(body is not None)
        return body

    monkeypatch.setattr(hot, "_refresh_request", spy)
    return seen


def _comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], Any]:
    """The answer with what differs between two refreshes left out: the tokens' unique values
    (the access token's other claims kept) and the body's length."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k != "content-length"]
    try:
        body: Any = response.json()
    except ValueError:
        return response.status_code, headers, response.content
    if isinstance(body, dict) and "access_token" in body:
        claims = claims_of(body["access_token"])
        body["access_token"] = {k: v for k, v in claims.items() if k not in UNIQUE_CLAIMS}
        body["refresh_token"] = len(body["refresh_token"])
    return response.status_code, headers, body


async def post(client: httpx.AsyncClient, index: int, **request: Any) -> httpx.Response:
    headers = {**request.pop("headers", {}), "X-Request-ID": f"same-{index}"}
    return await client.post(URL, headers=headers, **request)


async def test_a_refresh_answers_as_the_fastapi_route(
    auth: AuthHarness, account: Account, plain: httpx.AsyncClient, hot_bodies: list[bool]
) -> None:
    answers = []
    for client in (auth.client, plain):
        token = (await auth.login(account))["refresh_token"]
        rotated = await post(client, 1, json={"refresh_token": token})
        assert rotated.status_code == 200, rotated.text
        reused = await post(client, 2, json={"refresh_token": token})
        after_reuse = await post(client, 3, json={"refresh_token": rotated.json()["refresh_token"]})
        answers.append([_comparable(r) for r in (rotated, reused, after_reuse)])
    assert answers[0] == answers[1]
    assert [status for status, _, _ in answers[0]] == [200, 401, 401]
    assert answers[0][0][1] == [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("pragma", "no-cache"),
        ("x-request-id", "same-1"),
    ]
    assert hot_bodies == [True, True, True]


BODIES: list[dict[str, Any]] = [
    {"json": {"refresh_token": "not-a-token-we-issued"}},
    {
        "content": b'{"refresh_token": "abc", "extra": 1}',
        "headers": {"Content-Type": "application/json; charset=utf-8"},
    },
    {"json": {}},
    {"json": {"refresh_token": ""}},
    {"json": {"refresh_token": 5}},
    {"json": {"refresh_token": "x" * 513}},
    {"json": {"x": 1}},
    {"json": ["refresh_token"]},
    {"content": b"not json", "headers": {"Content-Type": "application/json"}},
    {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
    {"content": b""},
    {"content": b'{"refresh_token": "abc"}'},
    {"content": b'{"refresh_token": "abc"}', "headers": {"Content-Type": "text/plain"}},
    {"content": b'{"refresh_token": "abc"}', "headers": {"Content-Type": "application/x+json"}},
    {"data": {"refresh_token": "abc"}},
]


async def test_refusals_and_malformed_bodies_answer_as_the_fastapi_route(
    auth: AuthHarness, plain: httpx.AsyncClient, hot_bodies: list[bool]
) -> None:
    statuses = []
    for index, case in enumerate(BODIES):
        answered = await post(auth.client, index, **dict(case))
        route = await post(plain, index, **dict(case))
        assert (answered.status_code, answered.content) == (route.status_code, route.content), index
        assert answered.headers.multi_items() == route.headers.multi_items(), index
        statuses.append(answered.status_code)
    # application/x+json is JSON to FastAPI (any +json): an unknown token, from FastAPI.
    assert statuses == [401, 401] + [422] * 11 + [401, 422]
    # Only the two JSON refresh requests were the hot route's own; FastAPI answered the rest.
    assert hot_bodies == [True, True] + [False] * 13


async def test_refusals_of_a_session_answer_as_the_fastapi_route(
    auth: AuthHarness, plain: httpx.AsyncClient, hot_bodies: list[bool]
) -> None:
    """users down (503), a session past its idle end (401, revoked), a deactivated account."""
    answers = []
    for client in (auth.client, plain):
        account = auth.users.add()
        pair = await auth.login(account)
        auth.users.down = True
        down = await post(client, 1, json={"refresh_token": pair["refresh_token"]})
        auth.users.down = False
        auth.clock.offset = timedelta(seconds=auth.settings.refresh_idle_timeout + 1)
        idle = await post(client, 2, json={"refresh_token": pair["refresh_token"]})
        auth.clock.offset = timedelta()
        pair = await auth.login(account)
        account.is_active = False
        inactive = await post(client, 3, json={"refresh_token": pair["refresh_token"]})
        answers.append([_comparable(r) for r in (down, idle, inactive)])
    assert answers[0] == answers[1]
    assert [status for status, _, _ in answers[0]] == [503, 401, 401]
    assert hot_bodies == [True] * 3
