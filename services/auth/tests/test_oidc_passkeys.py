"""Passkeys on the hosted sign-in pages (API.md §13): without a password (a discoverable
passkey, its user verified) and as the second factor beside TOTP; the one script, hidden forms
without it, the challenge bound to the browser and the authorization request, each once, and
the `amr` the id_token carries."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from common.testing import html_forms

from .passkey_authenticator import SoftAuthenticator
from .support import (
    AuthHarness,
    Browser,
    assert_page_headers,
    authorize_url,
    browser_of,
    claims_of,
    enrol,
    open_sign_in,
    pkce_pair,
    query_of,
    redeem,
    register_client,
    register_passkey,
    running_auth,
)
from .users_double import Account

ORIGIN = "https://gatehouse.test"
WEBAUTHN = "/api/v1/auth/mfa/webauthn"


def passkey_form(page: httpx.Response) -> Any:
    """The page's passkey form (hidden: only passkeys.js shows it) and where it fetches its
    options."""
    [form] = [form for form in html_forms(page.text) if not form.shown]
    options_url = page.text.split('data-passkey-options="')[1].split('"')[0]
    return form, options_url.replace("&amp;", "&")


async def options_of(browser: Browser, page: httpx.Response) -> dict[str, Any]:
    """What passkeys.js fetches when the button is pressed."""
    form, options_url = passkey_form(page)
    fields = {k: v for k, v in form.hidden.items() if k in {"csrf_token", "mfa_token"}}
    answer = await browser.client.post(options_url, data=fields)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, Any] = answer.json()
    return body


async def post_credential(
    browser: Browser, page: httpx.Response, credential: dict[str, Any]
) -> httpx.Response:
    """The form post passkeys.js makes with the signed answer."""
    form, _ = passkey_form(page)
    return await browser.client.post(
        form.action, data={**form.hidden, "credential": json.dumps(credential)}
    )


@dataclass
class Offered:
    """A sign-in page open in `browser` whose passkey button was pressed: the options fetched."""

    authenticator: SoftAuthenticator
    client_id: str
    verifier: str
    page: httpx.Response
    options: dict[str, Any]


async def pressed(
    oidc: AuthHarness, browser: Browser, owner: Account, **authenticator: Any
) -> Offered:
    """`owner`'s passkey registered, a first-party client's sign-in page, the button pressed."""
    registered_one = await register_passkey(oidc, owner, ORIGIN, **authenticator)
    client = await register_client(oidc, first_party=True)
    verifier, challenge = pkce_pair()
    page = await browser.open(authorize_url(client["client_id"], challenge))
    options = await options_of(browser, page)
    return Offered(registered_one, client["client_id"], verifier, page, options)


async def test_the_sign_in_page_offers_a_passkey_only_to_a_script(
    oidc: AuthHarness, browser: Browser
) -> None:
    page = await open_sign_in(oidc, browser)
    assert_page_headers(page)
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert "connect-src 'self';" in page.headers["content-security-policy"]
    form, options_url = passkey_form(page)
    assert form.action.startswith("/api/v1/auth/authorize/passkey?")
    assert options_url.startswith("/api/v1/auth/authorize/passkey/options?")
    # The script is served by auth itself, as its tag names it (URL and content hash).
    tag = page.text.split("<script ")[1]
    url = tag.split('src="')[1].split('"')[0]
    integrity = tag.split('integrity="')[1].split('"')[0]
    script = await browser.open(url)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    digest = base64.b64encode(hashlib.sha256(script.content).digest()).decode()
    assert integrity == f"sha256-{digest}"
    assert "eval(" not in script.text
    assert "innerHTML" not in script.text


async def test_a_passkey_signs_in_without_a_password(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    offered = await pressed(oidc, browser, member)
    assert offered.options["publicKey"]["userVerification"] == "required"
    assert offered.options["publicKey"]["allowCredentials"] == []
    assert offered.options["publicKey"]["rpId"] == "gatehouse.test"
    credential = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
    answer = await post_credential(browser, offered.page, credential)
    assert answer.status_code == 303, answer.text
    assert any("gatehouse-sso" in c for c in answer.headers.get_list("set-cookie"))
    back = query_of(answer.headers["location"])
    tokens = (await redeem(oidc, offered.client_id, back["code"], offered.verifier)).json()
    assert claims_of(tokens["id_token"])["amr"] == ["hwk", "user", "mfa"]
    assert claims_of(tokens["id_token"])["sub"] == member.user_id
    assert claims_of(tokens["access_token"])["amr"] == ["hwk", "user", "mfa"]


async def test_a_passkey_sign_in_while_users_is_down_is_a_503_page(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    offered = await pressed(oidc, browser, member)
    credential = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
    oidc.users.down = True
    answer = await post_credential(browser, offered.page, credential)
    assert answer.status_code == 503
    assert_page_headers(answer)
    assert "try again" in answer.text


async def test_a_synced_passkey_is_swk(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    offered = await pressed(oidc, browser, member, backed_up=True)
    credential = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
    answer = await post_credential(browser, offered.page, credential)
    back = query_of(answer.headers["location"])
    tokens = (await redeem(oidc, offered.client_id, back["code"], offered.verifier)).json()
    assert claims_of(tokens["id_token"])["amr"] == ["swk", "user", "mfa"]


async def test_without_user_verification_no_sign_in(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    offered = await pressed(oidc, browser, member)
    credential = offered.authenticator.get(
        offered.options, ORIGIN, member.user_id, user_verified=False
    )
    refused = await post_credential(browser, offered.page, credential)
    assert refused.status_code == 401
    assert_page_headers(refused)
    assert "That passkey was not accepted" in refused.text
    assert not any("gatehouse-sso" in c for c in refused.headers.get_list("set-cookie"))


async def test_each_challenge_signs_in_once(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    offered = await pressed(oidc, browser, member)
    credential = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
    assert (await post_credential(browser, offered.page, credential)).status_code == 303
    again = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
    assert (await post_credential(browser, offered.page, again)).status_code == 401


async def test_the_challenge_is_bound_to_its_browser_and_request(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    offered = await pressed(oidc, browser, member)
    # Another authorization request in the same browser (another PKCE challenge, state).
    other_request = await browser.open(authorize_url(offered.client_id, pkce_pair()[1]))
    credential = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
    assert (await post_credential(browser, other_request, credential)).status_code == 401
    # Another browser, with the same authorization request: its CSRF cookie is not this one's.
    page = await browser.open(authorize_url(offered.client_id, pkce_pair()[1]))
    options = await options_of(browser, page)
    async with browser_of(oidc) as other:
        theirs = await other.open(str(page.request.url))
        credential = offered.authenticator.get(options, ORIGIN, member.user_id)
        assert (await post_credential(other, theirs, credential)).status_code == 401


async def test_someone_elses_passkey_signs_in_nobody(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    offered = await pressed(oidc, browser, oidc.users.add())
    # The user handle names another account than the one the passkey is registered to.
    forged = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
    assert (await post_credential(browser, offered.page, forged)).status_code == 401


async def test_a_deactivated_account_cannot_sign_in_with_its_passkey(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    offered = await pressed(oidc, browser, member)
    member.is_active = False
    credential = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
    assert (await post_credential(browser, offered.page, credential)).status_code == 401


async def test_the_options_need_the_pages_csrf_token(oidc: AuthHarness, browser: Browser) -> None:
    client = await register_client(oidc)
    page = await browser.open(authorize_url(client["client_id"], pkce_pair()[1]))
    _, options_url = passkey_form(page)
    refused = await browser.client.post(options_url, data={"csrf_token": "1.abc"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    bad_client = await browser.client.post(
        "/api/v1/auth/authorize/passkey/options?client_id=nobody", data={}
    )
    assert bad_client.status_code == 400


@pytest.mark.parametrize(
    ("verified", "amr"),
    [(False, ["pwd", "hwk", "mfa"]), (True, ["pwd", "hwk", "user", "mfa"])],
    ids=["present", "verified"],
)
async def test_a_passkey_as_the_second_factor(
    oidc: AuthHarness, browser: Browser, member: Account, verified: bool, amr: list[str]
) -> None:
    authenticator = await register_passkey(oidc, member, ORIGIN)
    await enrol(oidc, (await oidc.login(member))["access_token"])
    client = await register_client(oidc, first_party=True)
    verifier, challenge = pkce_pair()
    page = await browser.open(authorize_url(client["client_id"], challenge))
    step = await browser.submit(page, {"username": member.username, "password": member.password})
    assert "Enter your code" in step.text
    assert_page_headers(step)
    form, options_url = passkey_form(step)
    assert form.action.startswith("/api/v1/auth/authorize/mfa?")
    assert options_url.startswith("/api/v1/auth/authorize/mfa/options?")
    options = await options_of(browser, step)
    assert [c["id"] for c in options["publicKey"]["allowCredentials"]] == [
        base64.urlsafe_b64encode(authenticator.credential_id).rstrip(b"=").decode()
    ]
    credential = authenticator.get(options, ORIGIN, member.user_id, user_verified=verified)
    answer = await post_credential(browser, step, credential)
    assert answer.status_code == 303, answer.text
    back = query_of(answer.headers["location"])
    tokens = (await redeem(oidc, client["client_id"], back["code"], verifier)).json()
    assert claims_of(tokens["id_token"])["amr"] == amr


async def test_a_wrong_passkey_spends_the_tickets_attempts(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    authenticator = await register_passkey(oidc, member, ORIGIN)
    await enrol(oidc, (await oidc.login(member))["access_token"])
    page = await open_sign_in(oidc, browser, first_party=True)
    step = await browser.submit(page, {"username": member.username, "password": member.password})
    impostor = SoftAuthenticator()
    impostor.credential_id = authenticator.credential_id  # the id is public; the key is not
    options = await options_of(browser, step)
    for _ in range(5):
        options = await options_of(browser, step)
        wrong = await post_credential(browser, step, impostor.get(options, ORIGIN, member.user_id))
        assert wrong.status_code == 401
        assert "That passkey was not accepted" in wrong.text
    # Five wrong answers void the ticket, as five wrong codes do: nothing more is offered, no
    # options are given for it, and the right passkey comes too late.
    assert "data-passkey-options" not in wrong.text
    form, options_url = passkey_form(step)
    fields = {"csrf_token": form.hidden["csrf_token"], "mfa_token": form.hidden["mfa_token"]}
    assert (await browser.client.post(options_url, data=fields)).status_code == 401
    late = await post_credential(browser, step, authenticator.get(options, ORIGIN, member.user_id))
    assert late.status_code == 401


async def test_no_passkey_no_offer_and_no_script(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    await enrol(oidc, (await oidc.login(member))["access_token"])
    page = await open_sign_in(oidc, browser, first_party=True)
    step = await browser.submit(page, {"username": member.username, "password": member.password})
    assert "Enter your code" in step.text
    assert "script-src" not in step.headers["content-security-policy"]
    assert "<script" not in step.text


async def test_an_ip_address_issuer_offers_no_passkey(database_url: str) -> None:
    """A relying party id cannot be an IP address: such a deployment's pages stay script-free."""
    async with (
        running_auth(
            database_url, issuer="http://127.0.0.1:8000", base_url="http://127.0.0.1:8000"
        ) as harness,
        browser_of(harness) as browser,
    ):
        client = await register_client(harness)
        page = await browser.open(authorize_url(client["client_id"], pkce_pair()[1]))
        assert page.status_code == 200
        assert "script-src" not in page.headers["content-security-policy"]
        assert "data-passkey-options" not in page.text


async def test_require_verified_email_holds_back_a_passkey_too(database_url: str) -> None:
    """As after a right password: an unverified account's passkey signs nobody in (403 page)."""
    async with (
        running_auth(
            database_url, issuer=ORIGIN, base_url=ORIGIN, require_verified_email=True
        ) as harness,
        browser_of(harness) as browser,
    ):
        harness.users.verified_by_default = True  # to log in, register the client and passkey
        member = harness.users.add()
        offered = await pressed(harness, browser, member)
        member.email_verified = False
        credential = offered.authenticator.get(offered.options, ORIGIN, member.user_id)
        refused = await post_credential(browser, offered.page, credential)
        assert refused.status_code == 403
        assert_page_headers(refused)
        assert not any("gatehouse-sso" in c for c in refused.headers.get_list("set-cookie"))


@pytest.mark.parametrize(
    "ticket",
    ["", "not-a-ticket", "x" * 257, "x" * 10_000],
    ids=["empty", "unknown", "long", "huge"],
)
async def test_second_factor_options_refuse_a_dead_or_malformed_ticket(
    oidc: AuthHarness, browser: Browser, member: Account, ticket: str
) -> None:
    await register_passkey(oidc, member, ORIGIN)
    await enrol(oidc, (await oidc.login(member))["access_token"])
    page = await open_sign_in(oidc, browser, first_party=True)
    step = await browser.submit(page, {"username": member.username, "password": member.password})
    form, options_url = passkey_form(step)
    fields = {**{k: v for k, v in form.hidden.items() if k == "csrf_token"}, "mfa_token": ticket}
    answer = await browser.client.post(options_url, data=fields)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    # The real ticket was not spent by the refusals: the options still come for it.
    assert (await options_of(browser, step))["publicKey"]["allowCredentials"]
