"""The OpenID Connect provider through the real gateway (API.md §13): a stock relying party
(authlib's OAuth2 client) signs in with code + PKCE; the gateway passes the pages, their cookies
and redirects through unchanged, reads the sign-in form for the login limits, and refuses the
tokens of an ended sign-on session at once."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import jwt
from authlib.integrations.httpx_client import AsyncOAuth2Client
from common.testing import FormBrowser

from .platform import Platform
from .support import bearer, new_account, register, register_oidc_client


def callback(port: int) -> str:
    return f"http://127.0.0.1:{port}/callback"


async def sign_in(
    platform: Platform, browser: FormBrowser, account: dict[str, str], url: str
) -> tuple[httpx.Response, list[str]]:
    """The redirect back to the app, and every Set-Cookie the pages sent on the way."""
    page = await browser.open(url)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    answer = await browser.submit(
        page, {"username": account["username"], "password": account["password"]}
    )
    cookies = answer.headers.get_list("set-cookie")
    if answer.status_code == 200 and "Allow" in answer.text:
        answer = await browser.submit(answer, button="allow")
        cookies += answer.headers.get_list("set-cookie")
    return answer, cookies


async def test_stock_client_through_the_gateway(
    platform: Platform, gateway: httpx.AsyncClient
) -> None:
    issuer = platform.url("gateway")
    account = new_account()
    user = await register(gateway, account)
    client = register_oidc_client(
        platform,
        "Integration app",
        "--redirect-uri",
        callback(8765),
        "--post-logout-redirect-uri",
        "http://127.0.0.1:8765/",
    )
    discovery = (await gateway.get("/.well-known/openid-configuration")).json()
    assert discovery["authorization_endpoint"] == f"{issuer}/api/v1/auth/authorize"
    async with AsyncOAuth2Client(
        client_id=client["client_id"],
        redirect_uri=callback(8765),
        scope="openid profile email",
        code_challenge_method="S256",
    ) as rp:
        await through_the_gateway(platform, gateway, rp, client, account, user)


async def through_the_gateway(
    platform: Platform,
    gateway: httpx.AsyncClient,
    rp: AsyncOAuth2Client,
    client: dict[str, Any],
    account: dict[str, str],
    user: dict[str, Any],
) -> None:
    issuer = platform.url("gateway")
    discovery = (await gateway.get("/.well-known/openid-configuration")).json()
    verifier = secrets.token_urlsafe(48)
    url, state = rp.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce="it-nonce"
    )
    async with httpx.AsyncClient(base_url=platform.url("gateway"), timeout=30.0) as http:
        browser = FormBrowser(http)
        answer, cookies = await sign_in(platform, browser, account, url)
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        assert location.startswith(callback(8765) + "?")  # not followed, not rewritten
        sso = [c for c in cookies if "gatehouse-sso" in c]
        assert len(sso) == 1
        assert sso[0].startswith("gatehouse-sso=")  # the loopback fallback
        assert "httponly" in sso[0].lower()
        token: dict[str, Any] = dict(
            await rp.fetch_token(
                discovery["token_endpoint"], authorization_response=location, code_verifier=verifier
            )
        )
        assert f"state={state}" in location
        keys = jwt.PyJWKSet.from_dict((await gateway.get("/.well-known/jwks.json")).json())
        kid = jwt.get_unverified_header(token["id_token"])["kid"]
        key = next(k for k in keys.keys if k.key_id == kid)
        claims = jwt.decode(
            token["id_token"],
            key,
            algorithms=["RS256"],
            audience=client["client_id"],
            issuer=issuer,
        )
        assert claims["sub"] == user["id"]
        assert claims["nonce"] == "it-nonce"
        assert claims["preferred_username"] == account["username"]
        info = await gateway.get("/api/v1/auth/userinfo", headers=bearer(token["access_token"]))
        assert info.status_code == 200
        assert info.json()["email"] == account["email"]
        me = await gateway.get("/api/v1/users/me", headers=bearer(token["access_token"]))
        assert me.status_code == 200  # the platform's own API takes the app's token
        refreshed = await rp.refresh_token(
            discovery["token_endpoint"], refresh_token=token["refresh_token"]
        )
        logout = await browser.open(
            f"{discovery['end_session_endpoint']}?"
            + str(
                httpx.QueryParams(
                    {
                        "id_token_hint": token["id_token"],
                        "post_logout_redirect_uri": "http://127.0.0.1:8765/",
                        "state": "out",
                    }
                )
            )
        )
        assert logout.status_code == 302
        assert logout.headers["location"] == "http://127.0.0.1:8765/?state=out"
        for access in (token["access_token"], refreshed["access_token"]):
            refused = await gateway.get("/api/v1/users/me", headers=bearer(access))
            assert refused.status_code == 401  # the gateway refuses it from the next request on
            assert (
                await gateway.get("/api/v1/auth/userinfo", headers=bearer(access))
            ).status_code == 401


async def test_reused_code_through_the_gateway_revokes_the_first_tokens(
    platform: Platform, gateway: httpx.AsyncClient
) -> None:
    account = new_account()
    await register(gateway, account)
    client = register_oidc_client(
        platform, "Reuse app", "--first-party", "--redirect-uri", callback(8766)
    )
    verifier = secrets.token_urlsafe(48)
    async with AsyncOAuth2Client(
        client_id=client["client_id"],
        redirect_uri=callback(8766),
        scope="openid",
        code_challenge_method="S256",
    ) as rp:
        url, _ = rp.create_authorization_url(
            platform.url("gateway") + "/api/v1/auth/authorize", code_verifier=verifier
        )
    async with httpx.AsyncClient(base_url=platform.url("gateway"), timeout=30.0) as http:
        answer, _ = await sign_in(platform, FormBrowser(http), account, url)
    code = httpx.URL(answer.headers["location"]).params["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": callback(8766),
        "code_verifier": verifier,
        "client_id": client["client_id"],
    }
    first = await gateway.post("/api/v1/auth/token", data=form)
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    assert (await gateway.get("/api/v1/users/me", headers=bearer(access))).status_code == 200
    second = await gateway.post("/api/v1/auth/token", data=form)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert (await gateway.get("/api/v1/users/me", headers=bearer(access))).status_code == 401


async def test_bad_redirect_uri_is_a_page_at_the_gateway(
    platform: Platform, gateway: httpx.AsyncClient
) -> None:
    client = register_oidc_client(platform, "Strict app", "--redirect-uri", callback(8767))
    for uri in (callback(8767) + "/", callback(8768), callback(8767) + "/x"):
        query = httpx.QueryParams(
            {
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": uri,
                "scope": "openid",
                "code_challenge": "A" * 43,
                "code_challenge_method": "S256",
            }
        )
        page = await gateway.get(f"/api/v1/auth/authorize?{query}")
        assert page.status_code == 400
        assert "location" not in page.headers
        assert page.headers["content-type"].startswith("text/html")
