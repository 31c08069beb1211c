"""REQUIRE_VERIFIED_EMAIL (API.md §8): a password login of an unverified address is a 403
problem whose type ends in `/email-not-verified` — only once the password was right."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .support import (
    OIDC_ISSUER,
    AuthHarness,
    authorize_url,
    browser_of,
    pkce_pair,
    register_client,
    running_auth,
)

LOGIN = "/api/v1/auth/login"


@pytest.fixture(scope="module")
async def strict(database_url: str) -> AsyncIterator[AuthHarness]:
    async with running_auth(database_url, require_verified_email=True) as harness:
        yield harness


async def test_an_unverified_address_is_refused_after_the_right_password(
    strict: AuthHarness,
) -> None:
    account = strict.users.add()
    response = await strict.client.post(
        LOGIN, data={"username": account.username, "password": account.password}
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/email-not-verified")
    assert problem["status"] == 403
    assert "refresh_token" not in response.text


async def test_a_wrong_password_of_an_unverified_address_is_the_usual_401(
    strict: AuthHarness,
) -> None:
    account = strict.users.add()
    wrong = await strict.client.post(
        LOGIN, data={"username": account.username, "password": "not the password"}
    )
    unknown = await strict.client.post(
        LOGIN, data={"username": "nobody-" + account.username, "password": "x"}
    )
    assert wrong.status_code == 401
    assert wrong.json() == unknown.json()
    assert "verified" not in wrong.text


async def test_a_verified_address_logs_in(strict: AuthHarness) -> None:
    account = strict.users.add()
    account.email_verified = True
    tokens = await strict.login(account)
    assert tokens["access_token"]


async def test_by_default_an_unverified_address_logs_in(auth: AuthHarness) -> None:
    assert auth.settings.require_verified_email is False
    account = auth.users.add()
    assert account.email_verified is False
    assert (await auth.login(account))["access_token"]


async def test_the_hosted_sign_in_page_refuses_an_unverified_address_with_a_page(
    database_url: str,
) -> None:
    """The OpenID Connect sign-in page checks the password the same way (`authenticate`)."""
    async with (
        running_auth(
            database_url,
            issuer=OIDC_ISSUER,
            base_url=OIDC_ISSUER,
            require_verified_email=True,
        ) as harness,
        browser_of(harness) as browser,
    ):
        harness.users.verified_by_default = True  # the admin registering the client
        client = await register_client(harness)
        harness.users.verified_by_default = False
        account = harness.users.add()
        page = await browser.open(authorize_url(client["client_id"], pkce_pair()[1]))
        wrong = await browser.submit(page, {"username": account.username, "password": "nope"})
        assert wrong.status_code == 401
        assert "not verified" not in wrong.text
        refused = await browser.submit(
            wrong, {"username": account.username, "password": account.password}
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "not verified" in refused.text
        assert 'role="alert"' in refused.text
        assert not any("gatehouse-sso" in c for c in refused.headers.get_list("set-cookie"))
        account.email_verified = True
        signed_in = await browser.submit(
            refused, {"username": account.username, "password": account.password}
        )
        assert signed_in.status_code == 200  # on to the consent page
