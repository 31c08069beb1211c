"""The OpenID Connect provider driven by a stock relying party (authlib's OAuth 2.0 client):
authorization code + PKCE, the ID token verified against the JWKS, UserInfo, refresh, single
sign-on into a second app, end-session (API.md §13)."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken

from .support import (
    CALLBACK,
    OIDC_ISSUER,
    AuthHarness,
    Browser,
    bearer,
    claims_of,
    header_of,
    query_of,
    refresh_as,
    register_client,
)
from .users_double import Account

TOKEN_URL = f"{OIDC_ISSUER}/api/v1/auth/token"
AUTHORIZE_URL = f"{OIDC_ISSUER}/api/v1/auth/authorize"


def relying_party(
    auth: AuthHarness, client_id: str, *, scope: str = "openid profile email", **extra: Any
) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client_id,
        redirect_uri=CALLBACK,
        scope=scope,
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=auth.app),
        **extra,
    )


async def verified_id_token(
    auth: AuthHarness, id_token: str, client_id: str, nonce: str, access_token: str
) -> dict[str, Any]:
    """The ID token checked as an RP does: signature against the published JWKS, then the
    claims (iss, aud, exp, iat, nonce, at_hash) by authlib's OpenID Connect rules."""
    keys = jwt.PyJWKSet.from_dict((await auth.client.get("/.well-known/jwks.json")).json())
    header = jwt.get_unverified_header(id_token)
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    payload: dict[str, Any] = jwt.decode(
        id_token, key, algorithms=["RS256"], audience=client_id, issuer=OIDC_ISSUER
    )
    claims = CodeIDToken(
        payload,
        header,
        options={"iss": {"values": [OIDC_ISSUER]}, "aud": {"values": [client_id]}},
        params={"nonce": nonce, "access_token": access_token},
    )
    claims.validate()
    return payload


async def sign_in_with_authlib(
    auth: AuthHarness, browser: Browser, rp: AsyncOAuth2Client, member: Account, nonce: str
) -> tuple[dict[str, Any], str, str]:
    verifier = "v" * 20 + "-" + "x" * 40
    url, state = rp.create_authorization_url(AUTHORIZE_URL, code_verifier=verifier, nonce=nonce)
    page = await browser.open(url)
    assert page.status_code == 200
    answer = await browser.submit(page, {"username": member.username, "password": member.password})
    if answer.status_code == 200:
        assert "Allow" in answer.text
        answer = await browser.submit(answer, button="allow")
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    token = await rp.fetch_token(TOKEN_URL, authorization_response=location, code_verifier=verifier)
    return dict(token), state, location


async def test_stock_client_signs_in_with_code_and_pkce(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    member.full_name = "Ada Lovelace"
    client = await register_client(oidc, post_logout_redirect_uris=["http://127.0.0.1:8765/"])
    rp = relying_party(oidc, client["client_id"])
    token, state, location = await sign_in_with_authlib(oidc, browser, rp, member, "nonce-1")
    back = query_of(location)
    assert back["state"] == state
    assert back["iss"] == OIDC_ISSUER

    claims = await verified_id_token(
        oidc, token["id_token"], client["client_id"], "nonce-1", token["access_token"]
    )
    assert header_of(token["id_token"])["typ"] == "JWT"
    assert claims["sub"] == member.user_id
    assert claims["aud"] == client["client_id"]
    assert claims["nonce"] == "nonce-1"
    assert claims["amr"] == ["pwd"]
    assert isinstance(claims["auth_time"], int)
    assert claims["email"] == member.email
    assert claims["email_verified"] is False
    assert claims["preferred_username"] == member.username
    assert claims["name"] == "Ada Lovelace"
    assert token["token_type"] == "bearer"
    assert token["scope"] == "email openid profile"
    access = claims_of(token["access_token"])
    assert access["client_id"] == client["client_id"]
    assert access["aud"] == oidc.settings.audience
    assert set(access["scope"].split()) == {"openid", "profile", "email"}

    info = await rp.get(f"{OIDC_ISSUER}/api/v1/auth/userinfo")
    assert info.status_code == 200
    assert info.json() == {
        "sub": member.user_id,
        "preferred_username": member.username,
        "name": "Ada Lovelace",
        "email": member.email,
        "email_verified": False,
    }

    refreshed = await rp.refresh_token(TOKEN_URL, refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert claims_of(refreshed["access_token"])["client_id"] == client["client_id"]
    reused = await refresh_as(oidc, client["client_id"], token["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


async def test_scope_limits_the_claims(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, first_party=True)
    rp = relying_party(oidc, client["client_id"], scope="openid")
    token, _, _ = await sign_in_with_authlib(oidc, browser, rp, member, "n")
    claims = claims_of(token["id_token"])
    assert not {"email", "email_verified", "preferred_username", "name"} & set(claims)
    info = await oidc.client.get("/api/v1/auth/userinfo", headers=bearer(token["access_token"]))
    assert info.json() == {"sub": member.user_id}


async def test_second_app_signs_in_without_the_form_and_end_session_ends_both(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    first = await register_client(
        oidc, first_party=True, post_logout_redirect_uris=["http://127.0.0.1:8765/bye"]
    )
    second = await register_client(oidc, first_party=True)
    token, _, _ = await sign_in_with_authlib(
        oidc, browser, relying_party(oidc, first["client_id"]), member, "a"
    )
    rp2 = relying_party(oidc, second["client_id"])
    verifier = "w" * 50
    url, _ = rp2.create_authorization_url(AUTHORIZE_URL, code_verifier=verifier, nonce="b")
    answer = await browser.open(url)
    assert answer.status_code == 302  # no form: the sign-on session answered
    token2 = await rp2.fetch_token(
        TOKEN_URL, authorization_response=answer.headers["location"], code_verifier=verifier
    )
    assert claims_of(token2["id_token"])["auth_time"] == claims_of(token["id_token"])["auth_time"]

    logout = await browser.open(
        "/api/v1/auth/end-session?"
        + httpx.QueryParams(
            {
                "id_token_hint": token["id_token"],
                "post_logout_redirect_uri": "http://127.0.0.1:8765/bye",
                "state": "bye-1",
            }
        ).__str__()
    )
    assert logout.status_code == 302
    assert logout.headers["location"] == "http://127.0.0.1:8765/bye?state=bye-1"
    for pair in (token, token2):
        info = await oidc.client.get("/api/v1/auth/userinfo", headers=bearer(pair["access_token"]))
        assert info.status_code == 401
        refresh = await oidc.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
        )
        assert refresh.status_code == 400
    again = await browser.open(url)
    assert again.status_code == 200  # the sign-in form: the sign-on session is over
    assert "Sign in" in again.text
