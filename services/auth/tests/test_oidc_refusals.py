"""Every refusal of the OpenID Connect provider (API.md §13): each code works once, for its
client, redirect URI and verifier only, within 60 seconds; a bad client or redirect URI never
redirects; every other bad request goes back to the client as RFC 6749 §4.1.2.1 parameters."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from .support import (
    CALLBACK,
    INTERNAL_SECRET,
    OIDC_ISSUER,
    AuthHarness,
    Browser,
    admin_headers,
    authorize_url,
    bearer,
    claims_of,
    introspect_as_gateway,
    pkce_pair,
    query_of,
    redeem,
    refresh_as,
    register_client,
    sign_in_for_code,
)
from .users_double import Account


async def code_for(
    oidc: AuthHarness, browser: Browser, member: Account, client_id: str, **extra: str
) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    back = await sign_in_for_code(
        oidc, browser, member, authorize_url(client_id, challenge, **extra)
    )
    return back["code"], verifier


async def first_party_code(
    oidc: AuthHarness, browser: Browser, member: Account
) -> tuple[str, str, str]:
    """A new first-party client's id, and a code `member` signed in for with its verifier."""
    client = await register_client(oidc, first_party=True)
    code, verifier = await code_for(oidc, browser, member, client["client_id"])
    return client["client_id"], code, verifier


async def redeem_with_basic(
    oidc: AuthHarness, code: str, verifier: str, client_id: str, secret: str
) -> httpx.Response:
    """The code redeemed by a client that authenticates with HTTP Basic (no client_id in the
    form)."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    return await oidc.client.post("/api/v1/auth/token", data=data, auth=(client_id, secret))


def assert_oauth_error(response: Any, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


async def test_wrong_code_verifier_is_refused_and_spends_the_code(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client_id, code, verifier = await first_party_code(oidc, browser, member)
    wrong, _ = pkce_pair()
    assert_oauth_error(await redeem(oidc, client_id, code, wrong), "invalid_grant")
    assert_oauth_error(await redeem(oidc, client_id, code, verifier), "invalid_grant")


@pytest.mark.parametrize("verifier", ["short", "x" * 129, "bad verifier " * 4])
async def test_malformed_code_verifier_is_invalid_grant(
    oidc: AuthHarness, browser: Browser, member: Account, verifier: str
) -> None:
    client_id, code, _ = await first_party_code(oidc, browser, member)
    assert_oauth_error(await redeem(oidc, client_id, code, verifier), "invalid_grant")


async def test_reused_code_revokes_what_the_first_use_issued(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client_id, code, verifier = await first_party_code(oidc, browser, member)
    first = await redeem(oidc, client_id, code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    again = await redeem(oidc, client_id, code, verifier)
    assert_oauth_error(again, "invalid_grant")
    assert (await introspect_as_gateway(oidc, tokens["access_token"]))["active"] is False
    refresh = await refresh_as(oidc, client_id, tokens["refresh_token"])
    assert_oauth_error(refresh, "invalid_grant")
    info = await oidc.client.get("/api/v1/auth/userinfo", headers=bearer(tokens["access_token"]))
    assert info.status_code == 401


async def test_concurrent_redemptions_exactly_one_wins(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client_id, code, verifier = await first_party_code(oidc, browser, member)
    answers = await asyncio.gather(*(redeem(oidc, client_id, code, verifier) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]


async def test_code_presented_by_another_client_is_refused(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client_id, code, verifier = await first_party_code(oidc, browser, member)
    other = await register_client(oidc, first_party=True)
    assert_oauth_error(await redeem(oidc, other["client_id"], code, verifier), "invalid_grant")
    assert_oauth_error(await redeem(oidc, client_id, code, verifier), "invalid_grant")


async def test_code_expires_after_60_seconds(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client_id, code, verifier = await first_party_code(oidc, browser, member)
    oidc.clock.advance(61)
    oidc.users.ignore_token_times = True
    try:
        assert_oauth_error(await redeem(oidc, client_id, code, verifier), "invalid_grant")
    finally:
        oidc.users.ignore_token_times = False


@pytest.mark.parametrize(
    "redirect_uri",
    [
        CALLBACK + "/",
        "http://127.0.0.1:8766/callback",
        CALLBACK + "/more",
        "http://localhost:8765/callback",
        CALLBACK + "?x=1",
    ],
)
async def test_redirect_uri_must_match_at_the_token_endpoint(
    oidc: AuthHarness, browser: Browser, member: Account, redirect_uri: str
) -> None:
    client_id, code, verifier = await first_party_code(oidc, browser, member)
    answer = await redeem(oidc, client_id, code, verifier, redirect_uri=redirect_uri)
    assert_oauth_error(answer, "invalid_grant")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        CALLBACK + "/",
        "http://127.0.0.1:8766/callback",
        CALLBACK + "/more",
        "http://127.0.0.1:8765/Callback",
        "http://localhost:8765/callback",
        "https://127.0.0.1:8765/callback",
        CALLBACK + "?x=1",
        CALLBACK + "#",
        "",
        None,
    ],
)
async def test_unregistered_redirect_uri_is_an_error_page_never_a_redirect(
    oidc: AuthHarness, browser: Browser, redirect_uri: str | None
) -> None:
    client = await register_client(oidc)
    _, challenge = pkce_pair()
    url = authorize_url(client["client_id"], challenge, redirect_uri=redirect_uri)  # type: ignore[arg-type]
    page = await browser.open(url)
    assert page.status_code == 400
    assert "location" not in page.headers
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("client_id", ["oc-nobody", "", "x" * 100, None])
async def test_unknown_client_is_an_error_page(
    oidc: AuthHarness, browser: Browser, client_id: str | None
) -> None:
    _, challenge = pkce_pair()
    page = await browser.open(authorize_url(client_id, challenge))  # type: ignore[arg-type]
    assert page.status_code == 400
    assert "location" not in page.headers


async def test_repeated_client_or_redirect_uri_is_an_error_page(
    oidc: AuthHarness, browser: Browser
) -> None:
    client = await register_client(oidc)
    _, challenge = pkce_pair()
    url = authorize_url(client["client_id"], challenge)
    for extra in (f"&client_id={client['client_id']}", "&redirect_uri=http%3A%2F%2Fevil.test%2F"):
        page = await browser.open(url + extra)
        assert page.status_code == 400
        assert "location" not in page.headers


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "profile email"}, "invalid_scope"),
        ({"scope": "openid users:manage"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "select_account"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
        ({"request_uri": "https://x.test/r"}, "request_uri_not_supported"),
        ({"nonce": "n" * 513}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
    ],
)
async def test_bad_requests_go_back_to_the_client_with_state_and_iss(
    oidc: AuthHarness, browser: Browser, change: dict[str, str | None], error: str
) -> None:
    client = await register_client(oidc)
    _, challenge = pkce_pair()
    state = "a state/with?odd&chars=é "
    url = authorize_url(client["client_id"], challenge, state=state, **change)  # type: ignore[arg-type]
    answer = await browser.open(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "?")
    back = query_of(location)
    assert back["error"] == error
    assert back["state"] == state
    assert back["iss"] == OIDC_ISSUER
    assert "code" not in back


async def test_repeated_parameter_goes_back_as_invalid_request(
    oidc: AuthHarness, browser: Browser
) -> None:
    client = await register_client(oidc)
    _, challenge = pkce_pair()
    answer = await browser.open(authorize_url(client["client_id"], challenge) + "&scope=openid")
    assert answer.status_code == 302
    assert query_of(answer.headers["location"])["error"] == "invalid_request"


async def test_state_and_nonce_come_back_unchanged(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, first_party=True)
    verifier, challenge = pkce_pair()
    state, nonce = "s+t a/t=e&%20?ü", "n+o n/c=e&ü"
    back = await sign_in_for_code(
        oidc,
        browser,
        member,
        authorize_url(client["client_id"], challenge, state=state, nonce=nonce),
    )
    assert back["state"] == state
    tokens = (await redeem(oidc, client["client_id"], back["code"], verifier)).json()
    assert claims_of(tokens["id_token"])["nonce"] == nonce


async def test_no_state_no_nonce(oidc: AuthHarness, browser: Browser, member: Account) -> None:
    client = await register_client(oidc, first_party=True)
    verifier, challenge = pkce_pair()
    url = authorize_url(client["client_id"], challenge, state=None, nonce=None)  # type: ignore[arg-type]
    back = await sign_in_for_code(oidc, browser, member, url)
    assert "state" not in back
    tokens = (await redeem(oidc, client["client_id"], back["code"], verifier)).json()
    assert "nonce" not in claims_of(tokens["id_token"])


async def test_confidential_client_must_authenticate(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, type="confidential", first_party=True)
    client_id, secret = client["client_id"], client["client_secret"]
    code, verifier = await code_for(oidc, browser, member, client_id)
    assert_oauth_error(await redeem(oidc, client_id, code, verifier), "invalid_client", 401)
    wrong = await redeem_with_basic(oidc, code, verifier, client_id, secret + "x")
    assert_oauth_error(wrong, "invalid_client", 401)
    basic = await redeem_with_basic(oidc, code, verifier, client_id, secret)
    assert basic.status_code == 200, basic.text
    refresh = basic.json()["refresh_token"]
    unauthenticated = await refresh_as(oidc, client_id, refresh)
    assert_oauth_error(unauthenticated, "invalid_grant")


async def test_confidential_client_may_post_its_secret(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, type="confidential", first_party=True)
    code, verifier = await code_for(oidc, browser, member, client["client_id"])
    answer = await redeem(
        oidc, client["client_id"], code, verifier, client_secret=client["client_secret"]
    )
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    refreshed = await oidc.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_refresh_token_of_one_client_is_refused_to_another(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client_id, code, verifier = await first_party_code(oidc, browser, member)
    other = await register_client(oidc, first_party=True)
    tokens = (await redeem(oidc, client_id, code, verifier)).json()
    stolen = await refresh_as(oidc, other["client_id"], tokens["refresh_token"])
    assert_oauth_error(stolen, "invalid_grant")


async def test_public_client_cannot_use_a_service_grant_and_vice_versa(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, type="confidential", first_party=True)
    service = await oidc.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert_oauth_error(service, "unauthorized_client")
    code, verifier = await code_for(oidc, browser, member, client["client_id"])
    as_gateway = await redeem_with_basic(oidc, code, verifier, "gateway", INTERNAL_SECRET)
    assert_oauth_error(as_gateway, "unauthorized_client")


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "authorization_code"},
        {"grant_type": "authorization_code", "code": "x", "client_id": "oc-nobody"},
        {"grant_type": "authorization_code", "code": "x" * 600, "client_id": "oc-nobody"},
    ],
)
async def test_malformed_code_grants_are_oauth_errors(
    oidc: AuthHarness, form: dict[str, str]
) -> None:
    answer = await oidc.client.post("/api/v1/auth/token", data=form)
    assert answer.status_code in {400, 401}
    assert answer.json()["error"] in {"invalid_request", "invalid_client", "invalid_grant"}


async def test_unknown_code_is_invalid_grant(oidc: AuthHarness) -> None:
    client = await register_client(oidc, first_party=True)
    verifier, _ = pkce_pair()
    assert_oauth_error(await redeem(oidc, client["client_id"], "nope", verifier), "invalid_grant")


async def test_deleted_client_loses_its_sessions(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client_id, code, verifier = await first_party_code(oidc, browser, member)
    tokens = (await redeem(oidc, client_id, code, verifier)).json()
    headers = await admin_headers(oidc)
    deleted = await oidc.client.delete(f"/api/v1/auth/clients/{client_id}", headers=headers)
    assert deleted.status_code == 204
    assert (await introspect_as_gateway(oidc, tokens["access_token"]))["active"] is False
    page = await browser.open(authorize_url(client_id, pkce_pair()[1]))
    assert page.status_code == 400


async def test_userinfo_needs_an_openid_token(oidc: AuthHarness, member: Account) -> None:
    first_party = await oidc.login(member)
    answer = await oidc.client.get(
        "/api/v1/auth/userinfo", headers=bearer(first_party["access_token"])
    )
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    assert (await oidc.client.get("/api/v1/auth/userinfo")).status_code == 401
    garbage = await oidc.client.get("/api/v1/auth/userinfo", headers=bearer("nope"))
    assert garbage.status_code == 401
