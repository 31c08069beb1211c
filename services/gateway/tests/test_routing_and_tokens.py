"""Routing, token checks and what the gateway lets through to the services."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from common.testing import TokenFactory

from .conftest import AUDIENCE, ISSUER, bearer
from .upstream import Served

ME = "/api/v1/users/me"


async def test_public_and_protected_routes(
    gateway: httpx.AsyncClient, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    register = await gateway.post("/api/v1/users/", json={"x": 1})
    assert register.status_code == 200
    assert register.json()["service"] == "users"
    jwks = await gateway.get("/.well-known/jwks.json")
    assert jwks.json()["service"] == "auth"
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


def forged(tokens: TokenFactory) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "u",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j",
        "sid": "s",
        "scope": "users:read users:manage",
    }
    good = tokens.access_token("u")
    header, _payload, signature = good.split(".")

    def b64(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    other = TokenFactory(ISSUER, AUDIENCE, kid=tokens.kid)
    return {
        "alg none": b64({"alg": "none", "typ": "at+jwt", "kid": tokens.kid})
        + "."
        + b64(claims)
        + ".",
        "tampered payload": header + "." + b64(claims) + "." + signature,
        "another key, same kid": other.access_token("u"),
        "expired": tokens.access_token("u", lifetime=-120),
        "wrong audience": tokens.access_token("u", audience="someone-else"),
        "wrong issuer": tokens.access_token("u", iss="http://evil.example"),
        "wrong typ": tokens.access_token("u", headers={"typ": "JWT"}),
        "future nbf": tokens.access_token("u", nbf=now + 3600),
        "garbage": "not-a-token",
        "huge": "a." * 10_000 + "b",
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "tampered payload",
        "another key, same kid",
        "expired",
        "wrong audience",
        "wrong issuer",
        "wrong typ",
        "future nbf",
        "garbage",
        "huge",
    ],
)
async def test_forged_tokens_never_reach_the_service(
    gateway: httpx.AsyncClient, tokens: TokenFactory, upstreams: dict[str, Served], case: str
) -> None:
    token = forged(tokens)[case]
    before = upstreams["users"].app.state.calls
    response = await gateway.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert upstreams["users"].app.state.calls == before


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
