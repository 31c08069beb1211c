"""Forged, tampered and malformed tokens (the attack cases of common's verifier suite, through
the gateway): a 401 with `error="invalid_token"`, and the service never sees the request."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from common.testing import AUDIENCE, ISSUER, TokenFactory, b64json, b64url, sign_hs256
from gateway.main import create_app

from .support import gateway_settings, serving_doubles
from .upstream import Served

ME = "/api/v1/users/me"


ADMIN_ID = "0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11"


def claims(tokens: TokenFactory, **overrides: Any) -> dict[str, Any]:
    """An admin's claims, what a forger would want; `overrides` replace any."""
    wanted = {"scope": "users:read users:manage", "roles": ["admin"], **overrides}
    return tokens.claims(ADMIN_ID, session_id="session-1", **wanted)


def without(tokens: TokenFactory, name: str) -> dict[str, Any]:
    values = claims(tokens)
    del values[name]
    return values


def flip_last_signature_bit(token: str) -> str:
    head, body, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[-1] ^= 1
    return f"{head}.{body}.{b64url(bytes(raw))}"


Forgery = Callable[[TokenFactory], str]
FORGERIES: dict[str, Forgery] = {
    "alg none": lambda t: f"{b64json(t.header(alg='none'))}.{b64json(claims(t))}.",
    "alg None": lambda t: f"{b64json(t.header(alg='None'))}.{b64json(claims(t))}.",
    "HS256 keyed with the public key": lambda t: sign_hs256(
        t.public_pem(), t.header(alg="HS256"), claims(t)
    ),
    "RS512 named, real key": lambda t: t.sign_exactly(t.header(alg="RS512"), claims(t)),
    "PS256 named, real key": lambda t: t.sign_exactly(t.header(alg="PS256"), claims(t)),
    "tampered payload": lambda t: (
        t.access_token("u").split(".")[0]
        + "."
        + b64json(claims(t))
        + "."
        + t.access_token("u").split(".")[2]
    ),
    "flipped signature bit": lambda t: flip_last_signature_bit(t.access_token("u")),
    "signature stripped": lambda t: t.access_token("u").rsplit(".", 1)[0] + ".",
    "another key, same kid": lambda t: TokenFactory(ISSUER, AUDIENCE, kid=t.kid).access_token("u"),
    "unknown kid": lambda t: t.sign_exactly(t.header(kid="k-unknown"), claims(t)),
    "kid path injection": lambda t: t.sign_exactly(t.header(kid="../../etc/passwd"), claims(t)),
    "missing kid": lambda t: t.sign_exactly({"alg": "RS256", "typ": "at+jwt"}, claims(t)),
    "jku header": lambda t: t.sign_exactly(
        t.header(jku="https://attacker.example/jwks.json"), claims(t)
    ),
    "embedded jwk": lambda t: TokenFactory(ISSUER, AUDIENCE, kid=t.kid).access_token(
        "admin", headers={"jwk": t.jwks()["keys"][0]}
    ),
    "crit header": lambda t: t.sign_exactly(t.header(crit=["exp"]), claims(t)),
    "wrong typ": lambda t: t.access_token("u", headers={"typ": "JWT"}),
    "missing typ": lambda t: t.sign_exactly({"alg": "RS256", "kid": t.kid}, claims(t)),
    "expired": lambda t: t.access_token("u", lifetime=-120),
    "wrong audience": lambda t: t.access_token("u", audience="someone-else"),
    "wrong issuer": lambda t: t.access_token("u", iss="http://evil.example"),
    "future nbf": lambda t: t.access_token("u", nbf=int(time.time()) + 3600),
    "issued in the future": lambda t: t.sign_exactly(
        t.header(), claims(t, iat=int(time.time()) + 3600)
    ),
    "lifetime beyond the maximum": lambda t: t.access_token("u", lifetime=24 * 3600),
    "missing exp": lambda t: t.sign_exactly(t.header(), without(t, "exp")),
    "missing sub": lambda t: t.sign_exactly(t.header(), without(t, "sub")),
    "numeric sub": lambda t: t.sign_exactly(t.header(), claims(t, sub=12345)),
    "string exp": lambda t: t.sign_exactly(t.header(), claims(t, exp="9999999999")),
    "roles as a string": lambda t: t.sign_exactly(t.header(), claims(t, roles="admin")),
    "opaque refresh token": lambda _t: b64url(uuid.uuid4().bytes * 2),
    "garbage": lambda _t: "not-a-token",
    "two parts": lambda _t: "a.b",
    "huge": lambda _t: "a." * 10_000 + "b",
}


@pytest.fixture(scope="module")
async def target(tokens: TokenFactory) -> AsyncIterator[tuple[httpx.AsyncClient, Served]]:
    """One gateway for every forgery (none of them changes anything); its users double."""
    async with serving_doubles(tokens) as upstreams:
        served = Served(create_app(gateway_settings(upstreams)))
        await served.start()
        try:
            async with httpx.AsyncClient(base_url=served.url, timeout=10.0) as client:
                yield client, upstreams["users"]
        finally:
            await served.stop()


@pytest.mark.parametrize("case", sorted(FORGERIES))
async def test_forged_tokens_never_reach_the_service(
    target: tuple[httpx.AsyncClient, Served], tokens: TokenFactory, case: str
) -> None:
    gateway, users = target
    token = FORGERIES[case](tokens)
    before = users.app.state.calls
    response = await gateway.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["content-type"].startswith("application/problem+json")
    assert users.app.state.calls == before


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_cooldown(
    gateway: httpx.AsyncClient, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    for index in range(10):
        token = tokens.sign_exactly(tokens.header(kid=f"k{index}"), claims(tokens))
        response = await gateway.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    # The first fetch plus at most one refetch for an unknown kid within the cooldown.
    assert upstreams["auth"].app.state.jwks_fetches <= 2


async def test_keys_are_fetched_once_for_many_requests(
    gateway: httpx.AsyncClient, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    for index in range(20):
        token = tokens.access_token(f"user-{index}")
        response = await gateway.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    assert upstreams["auth"].app.state.jwks_fetches == 1


async def test_a_forged_token_on_a_public_route_counts_as_anonymous(
    make_gateway: Callable[..., Any], tokens: TokenFactory
) -> None:
    gateway: httpx.AsyncClient = await make_gateway(gateway_rate_limit="2/hour")
    forged = {"Authorization": f"Bearer {FORGERIES['another key, same kid'](tokens)}"}
    statuses = [
        (await gateway.post("/api/v1/users/", json={}, headers=forged)).status_code
        for _ in range(3)
    ]
    # Passed on (the service decides), limited by client IP, not by the forged subject.
    assert statuses == [200, 200, 429]
