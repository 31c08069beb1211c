"""The JWKS cache and the happy path of the verifier (the attack suite is in
test_tokens_attacks.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest
from common.testing import AUDIENCE, ISSUER, TokenFactory
from common.tokens import InvalidToken, JwksCache, JwksUnavailable, TokenVerifier


class CountingFetcher:
    def __init__(self, *factories: TokenFactory) -> None:
        self.factories = list(factories)
        self.calls = 0
        self.fail = False

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.fail:
            raise ValueError("auth is down")
        return {"keys": [k for f in self.factories for k in f.jwks()["keys"]]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier_for(fetcher: CountingFetcher, clock: Clock | None = None) -> TokenVerifier:
    jwks = JwksCache(fetcher, max_age=300, refetch_cooldown=10, clock=clock or Clock())
    return TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)


async def test_valid_token_yields_its_claims(token_factory: TokenFactory) -> None:
    verifier = verifier_for(CountingFetcher(token_factory))
    token = token_factory.access_token(
        "user-1", scope="users:read users:manage", roles=("admin",), session_id="s1"
    )
    claims = await verifier.verify(token)
    assert claims.subject == "user-1"
    assert claims.session_id == "s1"
    assert claims.scopes == {"users:read", "users:manage"}
    assert claims.roles == ("admin",)


async def test_keys_are_fetched_once_for_many_tokens(token_factory: TokenFactory) -> None:
    fetcher = CountingFetcher(token_factory)
    verifier = verifier_for(fetcher)
    for _ in range(50):
        await verifier.verify(token_factory.access_token("user-1"))
    assert fetcher.calls == 1


async def test_unknown_kid_triggers_one_refetch_then_cooldown() -> None:
    old = TokenFactory(ISSUER, AUDIENCE, kid="old")
    new = TokenFactory(ISSUER, AUDIENCE, kid="new")
    fetcher = CountingFetcher(old)
    clock = Clock()
    verifier = verifier_for(fetcher, clock)
    await verifier.verify(old.access_token("u"))
    clock.now += 11
    fetcher.factories.append(new)  # auth published a new key
    await verifier.verify(new.access_token("u"))
    assert fetcher.calls == 2
    stranger = TokenFactory(ISSUER, AUDIENCE, kid="never-published")
    for _ in range(20):
        with pytest.raises(InvalidToken):
            await verifier.verify(stranger.access_token("u"))
    assert fetcher.calls == 2  # within the cooldown: no refetch storm


async def test_cached_keys_survive_a_failed_refresh(token_factory: TokenFactory) -> None:
    fetcher = CountingFetcher(token_factory)
    clock = Clock()
    verifier = verifier_for(fetcher, clock)
    await verifier.verify(token_factory.access_token("u"))
    fetcher.fail = True
    clock.now += 301  # cache is stale, auth is down
    claims = await verifier.verify(token_factory.access_token("u"))
    assert claims.subject == "u"


async def test_no_keys_at_all_is_reported_as_unavailable(token_factory: TokenFactory) -> None:
    fetcher = CountingFetcher(token_factory)
    fetcher.fail = True
    with pytest.raises(JwksUnavailable):
        await verifier_for(fetcher).verify(token_factory.access_token("u"))


async def test_without_any_key_a_storm_fetches_once_per_cooldown(
    token_factory: TokenFactory,
) -> None:
    fetcher = CountingFetcher(token_factory)
    fetcher.fail = True  # auth down since start
    clock = Clock()
    verifier = verifier_for(fetcher, clock)
    token = token_factory.access_token("u")
    outcomes = await asyncio.gather(
        *(verifier.verify(token) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(outcome, JwksUnavailable) for outcome in outcomes)
    for _ in range(20):
        with pytest.raises(JwksUnavailable):
            await verifier.verify(token)
    assert fetcher.calls == 1
    clock.now += 11  # the cooldown has passed: one more try
    with pytest.raises(JwksUnavailable):
        await verifier.verify(token)
    assert fetcher.calls == 2
    fetcher.fail = False  # auth is back: the next try after the cooldown gets the keys
    clock.now += 11
    assert (await verifier.verify(token)).subject == "u"
    assert fetcher.calls == 3


async def test_malformed_jwks_entries_are_skipped(token_factory: TokenFactory) -> None:
    async def fetch() -> Mapping[str, Any]:
        good = token_factory.jwks()["keys"][0]
        return {
            "keys": [
                "junk",
                {"kid": "x", "kty": "EC"},
                {"kid": "y", "kty": "RSA", "n": "!!", "e": "AQAB"},
                {**good, "use": "enc", "kid": "enc-key"},
                good,
            ]
        }

    verifier = TokenVerifier(JwksCache(fetch), issuer=ISSUER, audience=AUDIENCE)
    assert (await verifier.verify(token_factory.access_token("u"))).subject == "u"


async def test_a_remembered_token_is_refused_once_its_key_is_unpublished(
    token_factory: TokenFactory,
) -> None:
    """The cache spares the RSA check, never the key set: when the signing key leaves the JWKS
    (refetched once the cache is stale), the remembered token is checked afresh and refused."""
    fetcher = CountingFetcher(token_factory)
    clock = Clock()
    jwks = JwksCache(fetcher, max_age=300, refetch_cooldown=10, clock=clock)
    verifier = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, cache_size=10)
    token = token_factory.access_token("user-1")
    await verifier.verify(token)
    other = TokenFactory(ISSUER, AUDIENCE, kid="test-key-2")
    fetcher.factories = [other]  # the key set no longer holds the token's key
    clock.now += 301
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
    assert fetcher.calls == 2


async def test_verified_tokens_are_remembered_until_they_expire(
    token_factory: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwks = JwksCache(CountingFetcher(token_factory), max_age=300, refetch_cooldown=10)
    verifier = TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, leeway=5, cache_size=2)
    token = token_factory.access_token("user-1", lifetime=60)
    first = await verifier.verify(token)
    decode = verifier._decode
    calls = 0

    def counting_decode(raw: str, key: Any) -> Any:
        nonlocal calls
        calls += 1
        return decode(raw, key)

    monkeypatch.setattr(verifier, "_decode", counting_decode)
    assert await verifier.verify(token) is first
    assert calls == 0  # no second RSA verification
    for subject in ("user-2", "user-3"):  # the cache holds two: the first token is forgotten
        await verifier.verify(token_factory.access_token(subject))
    await verifier.verify(token)
    assert calls == 3
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 120)
    with pytest.raises(InvalidToken):
        await verifier.verify(token)  # expired while cached
