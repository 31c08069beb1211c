"""The JWT attack suite against `common.tokens.TokenVerifier`.

Every forged, tampered or malformed token must raise `InvalidToken` — never verify, and never
raise anything else (which would surface as a 500).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from common.testing import AUDIENCE, ISSUER, TokenFactory, b64json, b64url, sign_hs256
from common.tokens import MAX_KID_LENGTH, MAX_TOKEN_BYTES, InvalidToken, JwksCache, TokenVerifier
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class Fetcher:
    def __init__(self, factory: TokenFactory) -> None:
        self.factory = factory
        self.calls = 0

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        return self.factory.jwks()


def make_verifier(factory: TokenFactory) -> tuple[TokenVerifier, Fetcher]:
    fetcher = Fetcher(factory)
    jwks = JwksCache(fetcher, max_age=300, refetch_cooldown=10)
    return TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, leeway=30), fetcher


@pytest.fixture
def verifier(token_factory: TokenFactory) -> TokenVerifier:
    return make_verifier(token_factory)[0]


async def assert_refused(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_the_baseline_token_verifies(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    token = token_factory.sign_exactly(token_factory.header(), token_factory.claims())
    assert (await verifier.verify(token)).subject == "user-1"


# --- alg=none and algorithm confusion --------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None])
@pytest.mark.parametrize("signature", ["", "AAAA"])
async def test_alg_none_in_any_case_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, alg: str | None, signature: str
) -> None:
    header = token_factory.header(alg=alg)
    token = f"{b64json(header)}.{b64json(token_factory.claims())}.{signature}"
    await assert_refused(verifier, token)


def public_key_forms(factory: TokenFactory) -> dict[str, bytes]:
    public = factory.private_key.public_key()
    pem = factory.public_pem()
    pkcs1_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1_der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    jwk = json.dumps(factory.jwks()["keys"][0]).encode()
    return {
        "pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "pkcs1-pem": pkcs1_pem,
        "der": der,
        "pkcs1-der": pkcs1_der,
        "jwk-json": jwk,
    }


@pytest.mark.parametrize(
    "form", ["pem", "pem-no-newline", "pkcs1-pem", "der", "pkcs1-der", "jwk-json"]
)
@pytest.mark.parametrize("alg", ["HS256", "hs256", "HS384", "HS512"])
async def test_hmac_keyed_with_the_rsa_public_key_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, form: str, alg: str
) -> None:
    key = public_key_forms(token_factory)[form]
    token = sign_hs256(key, token_factory.header(alg=alg), token_factory.claims())
    await assert_refused(verifier, token)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES256", "EdDSA", "rs256", "RS256 "])
async def test_other_algorithms_are_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, alg: str
) -> None:
    # Signed with the real key so only the alg name is wrong.
    token = token_factory.sign_exactly(token_factory.header(alg=alg), token_factory.claims())
    await assert_refused(verifier, token)


@pytest.mark.parametrize("alg", [["RS256"], {"RS256": 1}, 256])
async def test_non_string_alg_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, alg: Any
) -> None:
    token = token_factory.sign_exactly(token_factory.header(alg=alg), token_factory.claims())
    await assert_refused(verifier, token)


# --- kid ------------------------------------------------------------------------------------


async def test_unknown_kid_is_refused_and_refetches_are_bounded(
    token_factory: TokenFactory,
) -> None:
    verifier, fetcher = make_verifier(token_factory)
    for index in range(20):
        token = token_factory.sign_exactly(
            token_factory.header(kid=f"k{index}"), token_factory.claims()
        )
        await assert_refused(verifier, token)
    assert fetcher.calls == 1  # an unknown kid refetches at most once per cooldown


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "' OR '1'='1",
        "test-key-1\x00",
        "test-key-1 ",
        "TEST-KEY-1",
        "http://attacker.example/key.json",
        "x" * (MAX_KID_LENGTH + 1),
        "test-key-1" * 1000,
        "",
    ],
)
async def test_injected_or_oversized_kid_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, kid: str
) -> None:
    token = token_factory.sign_exactly(token_factory.header(kid=kid), token_factory.claims())
    await assert_refused(verifier, token)


@pytest.mark.parametrize("kid", [None, 1, ["test-key-1"], {"kid": "test-key-1"}, True])
async def test_non_string_kid_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, kid: Any
) -> None:
    token = token_factory.sign_exactly(token_factory.header(kid=kid), token_factory.claims())
    await assert_refused(verifier, token)


async def test_missing_kid_is_refused(verifier: TokenVerifier, token_factory: TokenFactory) -> None:
    header = token_factory.header()
    del header["kid"]
    await assert_refused(verifier, token_factory.sign_exactly(header, token_factory.claims()))


async def test_real_kid_with_another_key_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    impostor = TokenFactory(ISSUER, AUDIENCE, kid=token_factory.kid)
    await assert_refused(verifier, impostor.access_token("user-1"))


# --- key-carrying and critical headers -------------------------------------------------------


def attacker_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return jwk


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"jwk": "ATTACKER_JWK"},
        {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
        {"crit": ["exp"]},
        {"crit": ["b64"], "b64": False},
        {"JKU": "https://attacker.example/jwks.json", "jku": "https://attacker.example/"},
    ],
)
async def test_key_carrying_headers_are_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, extra: dict[str, Any]
) -> None:
    if extra.get("jwk") == "ATTACKER_JWK":
        extra = {"jwk": attacker_jwk()}
    # Even correctly signed by the real key: these headers are never acceptable.
    token = token_factory.sign_exactly(token_factory.header(**extra), token_factory.claims())
    await assert_refused(verifier, token)


async def test_token_signed_by_an_embedded_jwk_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    attacker = TokenFactory(ISSUER, AUDIENCE, kid=token_factory.kid)
    jwk = attacker.jwks()["keys"][0]
    token = attacker.access_token("admin", headers={"jwk": jwk})
    await assert_refused(verifier, token)


# --- claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"])
async def test_missing_required_claim_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, claim: str
) -> None:
    claims = token_factory.claims()
    del claims[claim]
    await assert_refused(verifier, token_factory.sign_exactly(token_factory.header(), claims))


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": 12345},
        {"sub": None},
        {"jti": 7},
        {"sid": ["s1"]},
        {"client_id": {"id": "x"}},
        {"scope": ["users:read"]},
        {"roles": "admin"},
        {"roles": [1, 2]},
        {"exp": "9999999999"},
        {"iat": True},
        {"exp": float("inf")},
        {"iat": "now"},
        {"nbf": None},
        {"aud": None},
        {"iss": None},
    ],
)
async def test_malformed_claims_are_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, claims: dict[str, Any]
) -> None:
    token = token_factory.sign_exactly(token_factory.header(), token_factory.claims(**claims))
    await assert_refused(verifier, token)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jws", "refresh+jwt", "", None, 1, ["at+jwt"]])
async def test_wrong_typ_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, typ: Any
) -> None:
    token = token_factory.sign_exactly(token_factory.header(typ=typ), token_factory.claims())
    await assert_refused(verifier, token)


async def test_missing_typ_is_refused(verifier: TokenVerifier, token_factory: TokenFactory) -> None:
    header = token_factory.header()
    del header["typ"]
    await assert_refused(verifier, token_factory.sign_exactly(header, token_factory.claims()))


@pytest.mark.parametrize(
    "iss", ["http://attacker.example", ISSUER + "/", ISSUER.upper(), "", ["http://gatehouse.test"]]
)
async def test_wrong_issuer_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, iss: Any
) -> None:
    token = token_factory.sign_exactly(token_factory.header(), token_factory.claims(iss=iss))
    await assert_refused(verifier, token)


@pytest.mark.parametrize("aud", ["users", "gatehouse", AUDIENCE + " ", ["users", "auth"], [], ""])
async def test_wrong_audience_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, aud: Any
) -> None:
    token = token_factory.sign_exactly(token_factory.header(), token_factory.claims(aud=aud))
    await assert_refused(verifier, token)


async def test_expired_token_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    now = int(time.time())
    claims = token_factory.claims(
        iat=now - 3600, nbf=now - 3600, exp=now - 31
    )  # past the 30 s leeway
    await assert_refused(verifier, token_factory.sign_exactly(token_factory.header(), claims))


@pytest.mark.parametrize("exp", [10**12, 1.5e300])
async def test_lifetime_beyond_the_maximum_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory, exp: float
) -> None:
    token = token_factory.sign_exactly(token_factory.header(), token_factory.claims(exp=exp))
    await assert_refused(verifier, token)


async def test_token_not_yet_valid_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    now = int(time.time())
    claims = token_factory.claims(nbf=now + 120, exp=now + 1000)
    await assert_refused(verifier, token_factory.sign_exactly(token_factory.header(), claims))


async def test_token_issued_in_the_future_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    now = int(time.time())
    claims = token_factory.claims(iat=now + 3600, nbf=now, exp=now + 7200)
    await assert_refused(verifier, token_factory.sign_exactly(token_factory.header(), claims))


# --- wrong kinds of token, tampering, and shapes ------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "6nU3qkFh3T9jJ0b8f8kP2oQZl0pZr2t2n7hYv3mXc1w",  # an opaque refresh token
        "a" * 43,
    ],
)
async def test_refresh_token_presented_as_bearer_is_refused(
    verifier: TokenVerifier, token: str
) -> None:
    await assert_refused(verifier, token)


async def test_tampered_payload_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    token = token_factory.access_token("user-1", scope="")
    header, _payload, signature = token.split(".")
    forged = b64json(token_factory.claims(scope="users:read users:manage", roles=["admin"]))
    await assert_refused(verifier, f"{header}.{forged}.{signature}")


async def test_tampered_header_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    token = token_factory.access_token("user-1")
    _header, payload, signature = token.split(".")
    header = b64json({"alg": "RS256", "typ": "at+jwt", "kid": token_factory.kid, "x": 1})
    await assert_refused(verifier, f"{header}.{payload}.{signature}")


async def test_flipped_signature_bit_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    token = token_factory.access_token("user-1")
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[-1] ^= 1
    await assert_refused(verifier, f"{header}.{payload}.{b64url(bytes(raw))}")


async def test_signature_stripped_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    header, payload, _signature = token_factory.access_token("user-1").split(".")
    await assert_refused(verifier, f"{header}.{payload}.")


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "...",
        "a.b",
        "a.b.c",
        "a.b.c.d.e",  # JWE compact shape
        "!!!.@@@.###",
        "eyJ.eyJ.eyJ",
        b64json([1, 2]) + "." + b64json({}) + ".sig",
        b64json("a string") + "." + b64json({}) + ".sig",
        b64json({"alg": "RS256", "typ": "at+jwt", "kid": "test-key-1"})
        + "."
        + b64json([])
        + ".c2ln",
        b64json({"alg": "RS256", "typ": "at+jwt", "kid": "test-key-1"}) + ".bm90IGpzb24.c2ln",
        "é.é.é",
        "\x00.\x00.\x00",
        " " + "a.b.c",
    ],
)
async def test_malformed_shapes_are_refused(verifier: TokenVerifier, token: str) -> None:
    await assert_refused(verifier, token)


async def test_oversized_token_is_refused_before_parsing(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    token = token_factory.access_token("user-1", padding="x" * MAX_TOKEN_BYTES)
    await assert_refused(verifier, token)


async def test_json_serialized_jws_is_refused(
    verifier: TokenVerifier, token_factory: TokenFactory
) -> None:
    header, payload, signature = token_factory.access_token("user-1").split(".")
    general = json.dumps(
        {"payload": payload, "signatures": [{"protected": header, "signature": signature}]}
    )
    await assert_refused(verifier, general)
