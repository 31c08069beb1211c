"""Routing, token checks and what the gateway lets through to the services."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from common.testing import TokenFactory

from .support import bearer
from .upstream import Served

ME = "/api/v1/users/me"


async def test_public_and_protected_routes(
    gateway: httpx.AsyncClient, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    register = await gateway.post("/api/v1/users/", json={"x": 1})
    assert register.status_code == 200
    assert register.json()["service"] == "users"
    jwks = await gateway.get("/.well-known/jwks.json")
    assert jwks.json()["keys"][0]["kid"] == tokens.kid
    assert (await gateway.get(ME)).status_code == 401
    me = await gateway.get(ME + "?x=1&y=%20", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["path"] == ME
    assert me.json()["query"] == "x=1&y=%20"
    # The service still gets the token: it verifies it itself.
    assert me.json()["headers"]["authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    "path",
    [
        "/internal/v1/secret",
        "/api/v1/users/../../internal/v1/secret",
        "/api/v1/users/%2e%2e/%2e%2e/internal/v1/secret",
        "/api/v1/users/%2E%2E%2Finternal",
        "/api/v1/users/..%2finternal",
        "/api/v1/users//internal",
        "/api/v1/users/%5c..%5cinternal",
        "/api/v1/users/me%00",
        "/nothing/here",
        "/api/v2/users/me",
    ],
)
async def test_paths_outside_the_table_are_404(
    gateway: httpx.AsyncClient, tokens: TokenFactory, upstreams: dict[str, Served], path: str
) -> None:
    before = upstreams["users"].app.state.calls + upstreams["auth"].app.state.calls
    request = gateway.build_request("GET", "http://placeholder", headers=bearer(tokens))
    request.url = request.url.copy_with(raw_path=path.encode())
    request.url = httpx.URL(str(gateway.base_url).rstrip("/") + path)
    response = await gateway.send(request)
    assert response.status_code == 404, (path, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    after = upstreams["users"].app.state.calls + upstreams["auth"].app.state.calls
    assert after == before, f"{path} reached an upstream"


async def test_absolute_form_targets_cannot_pick_the_upstream(
    gateway: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await gateway.get(ME, headers={**bearer(tokens), "Host": "evil.example"})
    assert response.status_code == 200
    assert response.json()["headers"]["host"].startswith("127.0.0.1")
    assert response.json()["headers"]["x-forwarded-host"] == "evil.example"


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "token abc"])
async def test_malformed_authorization_is_401(gateway: httpx.AsyncClient, value: str) -> None:
    response = await gateway.get(ME, headers={"Authorization": value})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_redirects_are_passed_back_not_followed(
    gateway: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await gateway.get("/api/v1/users/redirect", headers=bearer(tokens))
    assert response.status_code == 302
    assert response.headers["location"] == "http://elsewhere.example/next"


async def test_responses_stream_through(gateway: httpx.AsyncClient, tokens: TokenFactory) -> None:
    async with gateway.stream("GET", "/api/v1/users/stream", headers=bearer(tokens)) as response:
        text = "".join([chunk async for chunk in response.aiter_text()])
    assert text.count("chunk") == 50


async def raw_request(gateway: httpx.AsyncClient, head: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.base_url.port)
    writer.write(head)
    await writer.drain()
    answer = await reader.read(65536)
    writer.close()
    await writer.wait_closed()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


async def test_absolute_form_request_targets_stay_in_the_route_table(
    gateway: httpx.AsyncClient, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    token = bearer(tokens)["Authorization"].encode()
    status, body = await raw_request(
        gateway,
        b"GET http://evil.example:81/api/v1/users/me HTTP/1.1\r\nHost: evil.example\r\n"
        b"Authorization: " + token + b"\r\nConnection: close\r\n\r\n",
    )
    assert status == 200
    echoed = json.loads(body)
    assert echoed["service"] == "users"
    assert echoed["path"] == ME
    assert echoed["headers"]["host"] == f"127.0.0.1:{upstreams['users'].port}"
    before = upstreams["auth"].app.state.calls + upstreams["users"].app.state.calls
    status, _ = await raw_request(
        gateway,
        b"GET http://evil.example/internal/v1/secret HTTP/1.1\r\nHost: evil.example\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert status == 404
    after = upstreams["auth"].app.state.calls + upstreams["users"].app.state.calls
    assert after == before
