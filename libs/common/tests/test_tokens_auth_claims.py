"""`auth_time` and `amr` (RFC 9470, RFC 8176) in `common.tokens.TokenVerifier`: exposed when well
formed, and a forged or odd value refused with `InvalidToken` (a 401), never anything else."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from common.testing import AUDIENCE, ISSUER, TokenFactory
from common.tokens import InvalidToken, JwksCache, TokenVerifier


@pytest.fixture
def verifier(token_factory: TokenFactory) -> TokenVerifier:
    jwks = JwksCache(token_factory.fetcher())
    return TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, leeway=30)


def token(factory: TokenFactory, **claims: Any) -> str:
    return factory.access_token(str(uuid.uuid4()), **claims)


async def test_auth_time_and_amr_are_exposed(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    auth_time = int(time.time()) - 100
    claims = await verifier.verify(token(token_factory, auth_time=auth_time, amr=["pwd", "otp"]))
    assert claims.auth_time == auth_time
    assert claims.amr == ("pwd", "otp")


async def test_a_fractional_auth_time_is_a_number(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    auth_time = time.time() - 10.5
    claims = await verifier.verify(token(token_factory, auth_time=auth_time))
    assert claims.auth_time == int(auth_time)


async def test_tokens_without_them_verify(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    claims = await verifier.verify(token(token_factory, session_id=None))
    assert claims.auth_time is None
    assert claims.amr == ()


async def test_auth_time_within_the_leeway_is_accepted(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    claims = await verifier.verify(token(token_factory, auth_time=int(time.time()) + 10))
    assert claims.auth_time is not None


@pytest.mark.parametrize(
    "auth_time",
    [
        "1700000000",  # a numeric string is not a JSON number
        str(int(time.time())),
        True,
        False,
        None,
        [1700000000],
        {"t": 1700000000},
        float("nan"),
        float("inf"),
        float("-inf"),
        int(time.time()) + 3600,  # in the future beyond the leeway
        10**30,
    ],
)
async def test_malformed_auth_time_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, auth_time: object
) -> None:
    with pytest.raises(InvalidToken):
        await verifier.verify(token(token_factory, auth_time=auth_time, amr=["pwd"]))


@pytest.mark.parametrize(
    "amr",
    [
        "pwd",  # a string, not a list
        "pwd otp",
        {"pwd": True},
        None,
        7,
        [1],
        [None],
        [["pwd"]],
        [""],
        ["p" * 17],
        ["pwd"] * 9,
        ["pwd", {"otp": 1}],
    ],
)
async def test_malformed_amr_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, amr: object
) -> None:
    with pytest.raises(InvalidToken):
        await verifier.verify(token(token_factory, auth_time=int(time.time()), amr=amr))
