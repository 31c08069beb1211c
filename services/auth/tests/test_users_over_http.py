"""auth calling users as in production: the users double under uvicorn on loopback, auth's own
client (aiohttp, `auth.upstream.users.AiohttpUsers`), no transport handed in. The rest of the
suite reaches the double through `httpx.ASGITransport`; here the answers must be the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from auth.main import USERS_TIMEOUT
from auth.upstream.users import AiohttpUsers
from common.testing import free_port

from .support import AuthHarness, claims_of, running_auth

# The double closes idle connections this soon (uvicorn's default is 5 s): auth's pool still
# holds them, closed under it, when the next call comes.
USERS_KEEP_ALIVE = 1


@pytest.fixture(scope="module")
async def _wired(database_url: str) -> AsyncIterator[AuthHarness]:
    async with running_auth(
        database_url, users_over_http=True, users_keep_alive=USERS_KEEP_ALIVE
    ) as harness:
        yield harness


@pytest.fixture
def wired(_wired: AuthHarness) -> Iterator[AuthHarness]:
    yield _wired
    _wired.users.down = False
    _wired.users.busy = False


def _shape(response: httpx.Response) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, the headers but the request id, and the body with its tokens' values left out."""
    headers = {name: value for name, value in response.headers.items() if name != "x-request-id"}
    body = response.json()
    for name in ("access_token", "refresh_token"):
        if name in body:
            body[name] = type(body[name]).__name__
    return response.status_code, headers, body


async def test_a_refresh_answers_as_through_the_asgi_transport(
    wired: AuthHarness, auth: AuthHarness
) -> None:
    answers = []
    for harness in (wired, auth):
        account = harness.users.add(roles=("admin",))
        pair = await harness.login(account)
        response = await harness.refresh(pair["refresh_token"])
        assert response.status_code == 200, response.text
        claims = claims_of(response.json()["access_token"])
        assert claims["sub"] == account.user_id
        assert claims["roles"] == ["admin"]
        answers.append(_shape(response))
    assert answers[0] == answers[1]
    assert wired.users.calls.count("authorization") >= 1


async def test_refresh_chains_over_reused_connections(wired: AuthHarness) -> None:
    account = wired.users.add()
    token = (await wired.login(account))["refresh_token"]
    for _ in range(5):
        response = await wired.refresh(token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]


async def test_a_connection_users_closed_while_idle_is_not_a_503(wired: AuthHarness) -> None:
    account = wired.users.add()
    pair = await wired.login(account)
    await asyncio.sleep(USERS_KEEP_ALIVE * 1.5)  # users has closed the pooled connection
    response = await wired.refresh(pair["refresh_token"])
    assert response.status_code == 200, response.text
    await asyncio.sleep(USERS_KEEP_ALIVE * 1.5)
    assert (await wired.login(account))["token_type"] == "bearer"


async def test_concurrent_refreshes_exactly_one_succeeds(wired: AuthHarness) -> None:
    pair = await wired.login(wired.users.add())
    responses = await asyncio.gather(*(wired.refresh(pair["refresh_token"]) for _ in range(20)))
    assert sorted(response.status_code for response in responses) == [200] + [401] * 19


async def test_users_down_is_503_and_keeps_the_token(wired: AuthHarness) -> None:
    pair = await wired.login(wired.users.add())
    wired.users.down = True
    response = await wired.refresh(pair["refresh_token"])
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    wired.users.down = False
    assert (await wired.refresh(pair["refresh_token"])).status_code == 200


async def test_users_hashing_busy_is_503_with_its_retry_after(wired: AuthHarness) -> None:
    account = wired.users.add()
    wired.users.busy = True
    response = await wired.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": account.password}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_wrong_password_is_401(wired: AuthHarness) -> None:
    account = wired.users.add()
    response = await wired.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": "not it"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_users_not_listening_is_503_and_keeps_the_token(wired: AuthHarness) -> None:
    """Nothing on users' port (connection refused): a refresh and a login are 503
    problem+json, and the refresh token still works once users is back."""
    account = wired.users.add()
    pair = await wired.login(account)
    users = wired.state.users
    served = users.http
    users.http = AiohttpUsers(f"http://127.0.0.1:{free_port()}", USERS_TIMEOUT)
    try:
        refused = await wired.refresh(pair["refresh_token"])
        login = await wired.client.post(
            "/api/v1/auth/login",
            data={"username": account.username, "password": account.password},
        )
    finally:
        await users.http.aclose()
        users.http = served
    for response in (refused, login):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "The account service is unavailable."
    assert (await wired.refresh(pair["refresh_token"])).status_code == 200


async def test_users_silent_past_the_timeout_is_503(wired: AuthHarness) -> None:
    """users accepts the connection and never answers: 503 once the read limit passes."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the request
        await reader.read()  # nothing said until auth closes the connection
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pair = await wired.login(wired.users.add())
    users = wired.state.users
    served = users.http
    users.http = AiohttpUsers(f"http://127.0.0.1:{port}", httpx.Timeout(0.3))
    try:
        started = asyncio.get_running_loop().time()
        response = await wired.refresh(pair["refresh_token"])
        waited = asyncio.get_running_loop().time() - started
    finally:
        await users.http.aclose()
        users.http = served
        server.close()
        await server.wait_closed()
    assert response.status_code == 503, response.text
    assert 0.3 <= waited < 3
    assert (await wired.refresh(pair["refresh_token"])).status_code == 200
