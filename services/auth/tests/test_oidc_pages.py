"""The hosted sign-in, consent and sign-out pages (API.md §13): server-rendered, no script,
strict CSP, no framing, CSRF on every form, the `__Host-` sign-on cookie, consent remembered per
client and scope, prompt and max_age honoured."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import httpx
import pytest
from auth.oidc.models import SsoSession
from sqlalchemy import select

from .support import (
    CALLBACK,
    AuthHarness,
    Browser,
    assert_page_headers,
    authorize_url,
    bearer,
    browser_of,
    claims_of,
    enrol,
    open_sign_in,
    pkce_pair,
    query_of,
    redeem,
    register_client,
    running_auth,
    sign_in_for_code,
    totp_code,
)
from .users_double import Account


async def test_sign_in_page_is_strict_and_links_forgot_password(
    oidc: AuthHarness, browser: Browser
) -> None:
    client = await register_client(oidc)
    page = await browser.open(authorize_url(client["client_id"], pkce_pair()[1]))
    assert page.status_code == 200
    assert_page_headers(page)
    # The form may lead to the client (the post's answer redirects there), nowhere else.
    assert "form-action 'self' http://127.0.0.1:8765;" in page.headers["content-security-policy"]
    assert 'href="https://gatehouse.test/account/reset-password"' in page.text
    assert 'name="csrf_token"' in page.text
    assert "Sample app" in page.text
    stylesheet = await browser.open("/api/v1/auth/static/pages.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")


async def test_forgot_password_follows_account_url(database_url: str) -> None:
    async with (
        running_auth(
            database_url,
            issuer="https://gatehouse.test",
            base_url="https://gatehouse.test",
            account_url="https://app.example.com/account",
        ) as harness,
        browser_of(harness) as browser,
    ):
        client = await register_client(harness)
        page = await browser.open(authorize_url(client["client_id"], pkce_pair()[1]))
        assert 'href="https://app.example.com/account/reset-password"' in page.text


async def test_sign_on_cookie_is_host_prefixed_secure_httponly_lax(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    page = await open_sign_in(oidc, browser, first_party=True)
    answer = await browser.submit(page, {"username": member.email, "password": member.password})
    assert answer.status_code == 303
    cookies = [c for c in answer.headers.get_list("set-cookie") if "gatehouse-sso" in c]
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie.startswith("__Host-gatehouse-sso=")
    for flag in ("Secure", "HttpOnly", "SameSite=lax", "Path=/"):
        assert flag.lower() in cookie.lower()
    assert "domain" not in cookie.lower()


async def test_wrong_password_shows_the_form_again_without_a_session(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    page = await open_sign_in(oidc, browser)
    answer = await browser.submit(page, {"username": member.username, "password": "wrong one"})
    assert answer.status_code == 401
    assert_page_headers(answer)
    assert "Incorrect username or password." in answer.text
    assert not any("gatehouse-sso" in c for c in answer.headers.get_list("set-cookie"))
    retry = await browser.submit(answer, {"username": member.username, "password": member.password})
    assert retry.status_code == 200  # on to the consent page
    assert "Allow" in retry.text


@pytest.mark.parametrize(
    "fields",
    [{"username": "", "password": "x"}, {"username": "x" * 321, "password": "x"}],
)
async def test_bad_sign_in_fields_are_a_422_page(
    oidc: AuthHarness, browser: Browser, fields: dict[str, str]
) -> None:
    page = await open_sign_in(oidc, browser)
    answer = await browser.submit(page, fields)
    assert answer.status_code == 422
    assert_page_headers(answer)


async def test_sign_in_without_csrf_token_is_refused(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc)
    url = authorize_url(client["client_id"], pkce_pair()[1])
    await browser.open(url)
    credentials = {"username": member.username, "password": member.password}
    missing = await browser.client.post(url, data=credentials)
    assert missing.status_code == 403
    forged = await browser.client.post(url, data={**credentials, "csrf_token": "1.abc"})
    assert forged.status_code == 403
    cross_site = await browser.client.post(
        url, data=credentials, headers={"sec-fetch-site": "cross-site"}
    )
    assert cross_site.status_code == 403
    for answer in (missing, forged, cross_site):
        assert not any("gatehouse-sso" in c for c in answer.headers.get_list("set-cookie"))
    async with browser_of(oidc) as stranger:  # another browser: no CSRF cookie at all
        page = await browser.open(url)
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        stolen = await stranger.client.post(url, data={**credentials, "csrf_token": token})
        assert stolen.status_code == 403


async def test_sign_in_form_with_an_unknown_field_is_refused(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    page = await open_sign_in(oidc, browser)
    answer = await browser.submit(
        page, {"username": member.username, "password": member.password, "admin": "1"}
    )
    assert answer.status_code == 422


async def test_consent_is_asked_once_per_client_and_scope(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, scopes=["openid", "profile", "email"])
    _, challenge = pkce_pair()
    page = await browser.open(authorize_url(client["client_id"], challenge, scope="openid"))
    consent = await browser.submit(page, {"username": member.username, "password": member.password})
    assert consent.status_code == 200
    assert_page_headers(consent)
    assert "Allow Sample app?" in consent.text
    assert member.username in consent.text
    allowed = await browser.submit(consent, button="allow")
    assert allowed.status_code == 303
    assert "code" in query_of(allowed.headers["location"])
    # The same scope again: no page at all.
    again = await browser.open(authorize_url(client["client_id"], challenge, scope="openid"))
    assert again.status_code == 302
    assert "code" in query_of(again.headers["location"])
    # A new scope: asked again.
    wider = await browser.open(authorize_url(client["client_id"], challenge, scope="openid email"))
    assert wider.status_code == 200
    assert "email address" in wider.text
    # prompt=consent: asked even for what was allowed.
    forced = await browser.open(
        authorize_url(client["client_id"], challenge, scope="openid", prompt="consent")
    )
    assert forced.status_code == 200
    assert "Allow" in forced.text
    # prompt=none where consent is missing: consent_required.
    silent = await browser.open(
        authorize_url(client["client_id"], challenge, scope="openid email", prompt="none")
    )
    assert silent.status_code == 302
    assert query_of(silent.headers["location"])["error"] == "consent_required"


async def test_denied_consent_is_access_denied(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc)
    page = await browser.open(authorize_url(client["client_id"], pkce_pair()[1], state="s1"))
    consent = await browser.submit(page, {"username": member.username, "password": member.password})
    denied = await browser.submit(consent, button="deny")
    assert denied.status_code == 303
    back = query_of(denied.headers["location"])
    assert back["error"] == "access_denied"
    assert back["state"] == "s1"
    assert "code" not in back


async def test_consent_post_needs_a_sign_on_session_and_its_token(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc)
    url = authorize_url(client["client_id"], pkce_pair()[1])
    page = await browser.open(url)
    consent = await browser.submit(page, {"username": member.username, "password": member.password})
    action = consent.text.split('action="')[1].split('"')[0].replace("&amp;", "&")
    forged = await browser.client.post(action, data={"decision": "allow"})
    assert forged.status_code == 403
    async with browser_of(oidc) as stranger:
        answer = await stranger.client.post(action, data={"decision": "allow"})
        assert answer.status_code == 200  # no sign-on session: the sign-in form
        assert "Sign in" in answer.text


async def test_first_party_client_skips_consent(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, first_party=True)
    back = await sign_in_for_code(
        oidc, browser, member, authorize_url(client["client_id"], pkce_pair()[1])
    )
    assert "code" in back


async def test_prompt_login_and_max_age_ask_for_the_password_again(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, first_party=True)
    _, challenge = pkce_pair()
    await sign_in_for_code(oidc, browser, member, authorize_url(client["client_id"], challenge))
    assert (await browser.open(authorize_url(client["client_id"], challenge))).status_code == 302
    login = await browser.open(authorize_url(client["client_id"], challenge, prompt="login"))
    assert login.status_code == 200
    assert "Sign in" in login.text
    oidc.clock.advance(120)
    fresh_enough = await browser.open(authorize_url(client["client_id"], challenge, max_age="300"))
    assert fresh_enough.status_code == 302
    too_old = await browser.open(authorize_url(client["client_id"], challenge, max_age="60"))
    assert too_old.status_code == 200
    silent = await browser.open(
        authorize_url(client["client_id"], challenge, max_age="60", prompt="none")
    )
    assert query_of(silent.headers["location"])["error"] == "login_required"


async def test_sign_on_session_expires(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(oidc, first_party=True)
    _, challenge = pkce_pair()
    await sign_in_for_code(oidc, browser, member, authorize_url(client["client_id"], challenge))
    oidc.clock.advance(oidc.settings.sso_session_ttl + 1)
    page = await browser.open(authorize_url(client["client_id"], challenge))
    assert page.status_code == 200
    assert "Sign in" in page.text


async def test_end_session_without_a_hint_asks_first(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    client = await register_client(
        oidc, first_party=True, post_logout_redirect_uris=["http://127.0.0.1:8765/bye"]
    )
    _, challenge = pkce_pair()
    await sign_in_for_code(oidc, browser, member, authorize_url(client["client_id"], challenge))
    query = httpx.QueryParams(
        {
            "client_id": client["client_id"],
            "post_logout_redirect_uri": "http://127.0.0.1:8765/bye",
            "state": "x y",
        }
    )
    confirm = await browser.open(f"/api/v1/auth/end-session?{query}")
    assert confirm.status_code == 200
    assert_page_headers(confirm)
    # Still signed in until the user confirms.
    assert (await browser.open(authorize_url(client["client_id"], challenge))).status_code == 302
    done = await browser.submit(confirm)
    assert done.status_code == 303
    assert done.headers["location"] == "http://127.0.0.1:8765/bye?state=x+y"
    page = await browser.open(authorize_url(client["client_id"], challenge))
    assert page.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        {"post_logout_redirect_uri": "http://127.0.0.1:8765/bye"},  # no client named
        {"client_id": "oc-nobody"},
        {"id_token_hint": "not.a.token"},
    ],
)
async def test_end_session_refusals_are_error_pages(
    oidc: AuthHarness, browser: Browser, query: dict[str, str]
) -> None:
    page = await browser.open(f"/api/v1/auth/end-session?{httpx.QueryParams(query)}")
    assert page.status_code == 400
    assert "location" not in page.headers


async def test_end_session_refuses_an_unregistered_post_logout_uri(
    oidc: AuthHarness, browser: Browser
) -> None:
    client = await register_client(
        oidc, first_party=True, post_logout_redirect_uris=["http://127.0.0.1:8765/bye"]
    )
    for uri in ("http://127.0.0.1:8765/bye/", CALLBACK, "https://evil.test/"):
        query = httpx.QueryParams(
            {"client_id": client["client_id"], "post_logout_redirect_uri": uri}
        )
        page = await browser.open(f"/api/v1/auth/end-session?{query}")
        assert page.status_code == 400
        assert "location" not in page.headers


async def test_end_session_with_nothing_to_end_says_signed_out(browser: Browser) -> None:
    page = await browser.open("/api/v1/auth/end-session")
    assert page.status_code == 200
    assert "You are signed out." in page.text


async def test_plain_http_issuer_off_loopback_gets_no_sign_in(
    auth: AuthHarness, account: Account
) -> None:
    """ISSUER http://gatehouse.test: no Secure cookie possible, and not loopback either."""
    client = await register_client(auth)
    page = await auth.client.get(authorize_url(client["client_id"], pkce_pair()[1]))
    assert page.status_code == 400
    assert "HTTPS" in page.text


async def test_loopback_http_issuer_uses_the_development_cookie(database_url: str) -> None:
    async with (
        running_auth(
            database_url, issuer="http://127.0.0.1:8000", base_url="http://127.0.0.1:8000"
        ) as harness,
        browser_of(harness) as browser,
    ):
        member = harness.users.add()
        client = await register_client(harness, first_party=True)
        page = await browser.open(authorize_url(client["client_id"], pkce_pair()[1]))
        answer = await browser.submit(
            page, {"username": member.username, "password": member.password}
        )
        assert answer.status_code == 303
        cookie = next(c for c in answer.headers.get_list("set-cookie") if "sso" in c)
        assert cookie.startswith("gatehouse-sso=")
        assert "secure" not in cookie.lower()
        assert "httponly" in cookie.lower()


async def test_account_with_mfa_signs_in_with_password_then_code(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    enrolled = await enrol(oidc, (await oidc.login(member))["access_token"])
    client = await register_client(oidc, first_party=True)
    verifier, challenge = pkce_pair()
    url = authorize_url(client["client_id"], challenge)
    page = await browser.open(url)
    step = await browser.submit(page, {"username": member.username, "password": member.password})
    assert step.status_code == 200
    assert_page_headers(step)
    assert "Enter your code" in step.text
    assert not any("gatehouse-sso" in c for c in step.headers.get_list("set-cookie"))
    # Not signed in yet: the sign-on session starts only after the second factor.
    assert (await browser.open(url)).status_code == 200
    wrong = await browser.submit(step, {"code": "000000"})
    assert wrong.status_code == 401
    assert "The code is wrong" in wrong.text
    right = await browser.submit(wrong, {"code": totp_code(enrolled.secret, oidc.clock(), 1)})
    assert right.status_code == 303, right.text
    back = query_of(right.headers["location"])
    tokens = (await redeem(oidc, client["client_id"], back["code"], verifier)).json()
    assert claims_of(tokens["id_token"])["amr"] == ["pwd", "otp"]
    assert claims_of(tokens["access_token"])["amr"] == ["pwd", "otp"]


async def test_a_recovery_code_works_on_the_page_once(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    enrolled = await enrol(oidc, (await oidc.login(member))["access_token"])
    client = await register_client(oidc, first_party=True)
    url = authorize_url(client["client_id"], pkce_pair()[1])
    page = await browser.open(url)
    step = await browser.submit(page, {"username": member.username, "password": member.password})
    done = await browser.submit(step, {"code": enrolled.recovery_codes[0]})
    assert done.status_code == 303
    async with browser_of(oidc) as other:
        page = await other.open(url)
        step = await other.submit(page, {"username": member.username, "password": member.password})
        again = await other.submit(step, {"code": enrolled.recovery_codes[0]})
        assert again.status_code == 401


async def test_second_factor_post_needs_its_csrf_token_and_a_real_ticket(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    await enrol(oidc, (await oidc.login(member))["access_token"])
    client = await register_client(oidc, first_party=True)
    url = authorize_url(client["client_id"], pkce_pair()[1])
    page = await browser.open(url)
    step = await browser.submit(page, {"username": member.username, "password": member.password})
    action = step.text.split('action="')[1].split('"')[0].replace("&amp;", "&")
    assert (await browser.client.post(action, data={"code": "123456"})).status_code == 403
    forged = await browser.submit(step, {"mfa_token": member.user_id + ".forged", "code": "1"})
    assert forged.status_code == 401
    empty = await browser.submit(step, {"code": ""})
    assert empty.status_code == 422


async def test_signing_in_again_renews_the_sign_on_session_end_session_still_ends_all(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    """prompt=login in the same browser: one sign-on session, a fresh auth_time, a new cookie
    value; logging out from the second app still ends the first app's session."""
    first = await register_client(oidc, first_party=True)
    second = await register_client(
        oidc, first_party=True, post_logout_redirect_uris=["http://127.0.0.1:8765/bye"]
    )
    verifier, challenge = pkce_pair()
    back = await sign_in_for_code(
        oidc, browser, member, authorize_url(first["client_id"], challenge)
    )
    tokens = (await redeem(oidc, first["client_id"], back["code"], verifier)).json()
    old_cookie = browser.client.cookies.get("__Host-gatehouse-sso")
    oidc.clock.advance(5)
    again = await sign_in_for_code(
        oidc, browser, member, authorize_url(second["client_id"], challenge, prompt="login")
    )
    assert browser.client.cookies.get("__Host-gatehouse-sso") != old_cookie
    later = (await redeem(oidc, second["client_id"], again["code"], verifier)).json()
    assert claims_of(later["id_token"])["sid"] == claims_of(tokens["id_token"])["sid"]
    assert claims_of(later["id_token"])["auth_time"] > claims_of(tokens["id_token"])["auth_time"]
    async with browser_of(oidc) as thief:  # the cookie value from before the sign-in is dead
        thief.client.cookies.set("__Host-gatehouse-sso", old_cookie or "", domain="gatehouse.test")
        page = await thief.open(authorize_url(first["client_id"], challenge))
        assert page.status_code == 200
    query = httpx.QueryParams(
        {
            "id_token_hint": later["id_token"],
            "post_logout_redirect_uri": "http://127.0.0.1:8765/bye",
        }
    )
    ended = await browser.open(f"/api/v1/auth/end-session?{query}")
    assert ended.status_code == 302, ended.text
    info = await oidc.client.get("/api/v1/auth/userinfo", headers=bearer(tokens["access_token"]))
    assert info.status_code == 401


async def test_sign_in_while_users_is_down_is_a_503_page(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    page = await open_sign_in(oidc, browser)
    oidc.users.down = True
    answer = await browser.submit(page, {"username": member.username, "password": member.password})
    assert answer.status_code == 503
    assert_page_headers(answer)
    assert "try again" in answer.text


async def test_sign_in_post_of_another_type_is_a_page_not_a_500(
    oidc: AuthHarness, browser: Browser
) -> None:
    client = await register_client(oidc)
    url = authorize_url(client["client_id"], pkce_pair()[1])
    await browser.open(url)
    for content, content_type in (
        (b'{"username": "x"}', "application/json"),
        (b"username=%ZZ&password=x", "application/x-www-form-urlencoded"),
        (b"x" * 20000, "application/x-www-form-urlencoded"),
    ):
        answer = await browser.client.post(
            url, content=content, headers={"content-type": content_type}
        )
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.headers["content-type"].startswith("text/html")


async def sso_ids(oidc: AuthHarness, user_id: str) -> set[str]:
    async with oidc.state.db.sessionmaker() as db:
        rows = await db.scalars(select(SsoSession.id).where(SsoSession.user_id == user_id))
        return set(rows.all())


async def test_sign_on_sessions_are_pruned_once_nothing_they_opened_can_live(
    oidc: AuthHarness, browser: Browser, member: Account
) -> None:
    """Each new sign-on session deletes those that ended more than REFRESH_TOKEN_TTL ago: until
    then a session one of their codes opened may live, and end-session finds it through them."""
    now = oidc.clock()
    kept_for = timedelta(seconds=oidc.settings.refresh_token_ttl)
    ended = {
        "long ago": now - kept_for - timedelta(minutes=1),
        "lately": now - kept_for + timedelta(minutes=1),
    }
    rows = {
        when: SsoSession(
            id=str(uuid.uuid4()),
            token_hash=secrets.token_hex(32),
            user_id=member.user_id,
            auth_time=end - timedelta(days=1),
            amr="pwd",
            created_at=end - timedelta(days=1),
            expires_at=end,
        )
        for when, end in ended.items()
    }
    async with oidc.state.db.sessionmaker() as db, db.begin():
        db.add_all(rows.values())
    client = await register_client(oidc, first_party=True)
    await sign_in_for_code(
        oidc, browser, member, authorize_url(client["client_id"], pkce_pair()[1])
    )
    left = await sso_ids(oidc, member.user_id)
    assert rows["long ago"].id not in left
    assert rows["lately"].id in left
    assert len(left) == 2  # and the new one
