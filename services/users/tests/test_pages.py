"""The pages the emails link to (API.md §8): /account/reset-password and /account/verify-email,
served by users with common.pages — forms that work without script, CSRF-checked posts that call
the same service code as the JSON routes, and every failure a page (never a 500)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from common.pages import CONTENT_SECURITY_POLICY

from .support import PASSWORD, LinkEvents, UsersHarness

RESET_PAGE = "/account/reset-password"
VERIFY_PAGE = "/account/verify-email"
FORM = {"content-type": "application/x-www-form-urlencoded"}
NEW = "another long passphrase 2026"


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def assert_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "<script" not in response.text


async def reset_token(users: UsersHarness, links: LinkEvents, user: dict[str, Any]) -> str:
    await users.client.post("/api/v1/users/password/forgot", json={"email": user["email"]})
    await users.state.reset_links.drain()
    return await links.token_for(user["email"], "user.password_reset_requested")


async def logs_in(users: UsersHarness, user: dict[str, Any], password: str) -> bool:
    return (await users.check_credentials(user["username"], password)).status_code == 200


async def post_reset(
    users: UsersHarness, csrf: str, token: str, password: str, confirm: str | None = None
) -> httpx.Response:
    return await users.client.post(
        RESET_PAGE,
        data={
            "csrf_token": csrf,
            "token": token,
            "new_password": password,
            "confirm_password": password if confirm is None else confirm,
        },
    )


# --- reset ---------------------------------------------------------------------------------------
async def test_the_reset_page_sets_the_password(users: UsersHarness, links: LinkEvents) -> None:
    user = await users.register()
    token = await reset_token(users, links, user)
    page = await users.client.get(RESET_PAGE, params={"token": token})
    assert_page(page, 200)
    assert '<label for="new_password">' in page.text
    assert f'name="token" value="{token}"' in page.text
    assert 'action="/account/reset-password"' in page.text
    assert await logs_in(users, user, PASSWORD)  # a GET uses nothing
    done = await post_reset(users, csrf_of(page), token, NEW)
    assert_page(done, 200)
    assert "Your password was changed" in done.text
    assert 'role="status"' in done.text
    assert await logs_in(users, user, NEW)
    assert not await logs_in(users, user, PASSWORD)
    # Every session ends, as with the JSON route.
    assert [call.user_id for call in users.auth.calls] == [user["id"]]
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert me.json()["email_verified"] is True
    again = await post_reset(users, csrf_of(page), token, "yet another passphrase 99")
    assert_page(again, 400)
    assert await logs_in(users, user, NEW)


@pytest.mark.parametrize(
    ("password", "confirm", "field", "message"),
    [
        ("short", None, "new_password", "at least 8"),
        ("password123", None, "new_password", "common"),
        ("x" * 129, None, "new_password", "at most 128"),
        ("a\x00long enough password", None, "new_password", "match"),
        (NEW, NEW + "!", "confirm_password", "not the same"),
    ],
)
async def test_a_refused_password_is_shown_on_its_field_and_uses_nothing(
    users: UsersHarness,
    links: LinkEvents,
    password: str,
    confirm: str | None,
    field: str,
    message: str,
) -> None:
    user = await users.register()
    token = await reset_token(users, links, user)
    page = await users.client.get(RESET_PAGE, params={"token": token})
    refused = await post_reset(users, csrf_of(page), token, password, confirm)
    assert_page(refused, 422)
    error = re.search(
        rf'<p class="error" id="{field}-error" role="alert">([^<]*)</p>', refused.text
    )
    assert error is not None, refused.text
    assert message in error.group(1)
    assert f'aria-describedby="{field}' in refused.text
    assert password not in refused.text  # never echoed back
    assert await logs_in(users, user, PASSWORD)
    # The link still works: the refusal used nothing.
    done = await post_reset(users, csrf_of(refused), token, NEW)
    assert_page(done, 200)


@pytest.mark.parametrize(
    "token", ["", "x", "A" * 43, "A" * 5000, "%00", "é" * 43, "<script>alert(1)</script>"]
)
async def test_a_bad_reset_link_shows_a_page_not_a_form(users: UsersHarness, token: str) -> None:
    page = await users.client.get(RESET_PAGE, params={"token": token})
    assert_page(page, 400)
    assert "This link does not work" in page.text
    assert 'role="alert"' in page.text
    assert "<form" not in page.text
    assert "<script>alert" not in page.text


async def test_an_expired_reset_link_shows_the_dead_link_page(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    token = await reset_token(users, links, user)
    page = await users.client.get(RESET_PAGE, params={"token": token})
    users.clock.advance(1801)
    assert_page(await users.client.get(RESET_PAGE, params={"token": token}), 400)
    assert_page(await post_reset(users, csrf_of(page), token, NEW), 400)
    assert await logs_in(users, user, PASSWORD)


async def test_the_reset_form_needs_its_csrf_token(users: UsersHarness, links: LinkEvents) -> None:
    user = await users.register()
    token = await reset_token(users, links, user)
    page = await users.client.get(RESET_PAGE, params={"token": token})
    good = csrf_of(page)
    # The last character changed (a MAC's last one is "A" one time in 16: then to "E").
    wrong = good[:-1] + ("E" if good.endswith("A") else "A")
    for csrf in ("", "1.AAAA", wrong):
        refused = await post_reset(users, csrf, token, NEW)
        assert_page(refused, 403)
    # A token for the other page's form is no token for this one.
    verify_page = await users.client.get(VERIFY_PAGE, params={"token": "A" * 43})
    assert verify_page.status_code == 400  # no form there for an unknown link: mint one below
    user2 = await users.register()
    vtoken = await links.token_for(user2["email"])
    other = await users.client.get(VERIFY_PAGE, params={"token": vtoken})
    assert_page(await post_reset(users, csrf_of(other), token, NEW), 403)
    # Without the cookie the page's own token fails too.
    users.client.cookies.clear()
    assert_page(await post_reset(users, csrf_of(page), token, NEW), 403)
    assert await logs_in(users, user, PASSWORD)


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"token": "x"}', {"content-type": "application/json"}, 415),
        (b"token=a&token=b", FORM, 422),
        (b"token=a&is_admin=1", FORM, 422),
        (b"token=%zz", FORM, 422),
        (b"x" * 20_000, FORM, 413),
    ],
)
async def test_a_malformed_post_is_a_page_not_a_500(
    users: UsersHarness, content: bytes, headers: dict[str, str], status: int
) -> None:
    for path in (RESET_PAGE, VERIFY_PAGE):
        response = await users.client.post(path, content=content, headers=headers)
        assert_page(response, status)
        assert 'role="alert"' in response.text


# --- verify --------------------------------------------------------------------------------------
async def test_the_verify_page_asks_before_it_verifies(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    token = await links.token_for(user["email"])
    page = await users.client.get(VERIFY_PAGE, params={"token": token})
    assert_page(page, 200)
    assert "Confirm my email address" in page.text
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert me.json()["email_verified"] is False  # a GET (a mail scanner) verifies nothing
    done = await users.client.post(VERIFY_PAGE, data={"csrf_token": csrf_of(page), "token": token})
    assert_page(done, 200)
    assert "confirmed" in done.text
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert me.json()["email_verified"] is True
    again = await users.client.post(VERIFY_PAGE, data={"csrf_token": csrf_of(page), "token": token})
    assert_page(again, 400)
    assert_page(await users.client.get(VERIFY_PAGE, params={"token": token}), 400)


async def test_the_verify_page_confirms_an_email_change(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    new = "paged." + user["email"]
    await users.client.patch("/api/v1/users/me", json={"email": new}, headers=users.bearer(user))
    token = await links.token_for(new)
    page = await users.client.get(VERIFY_PAGE, params={"token": token})
    done = await users.client.post(VERIFY_PAGE, data={"csrf_token": csrf_of(page), "token": token})
    assert_page(done, 200)
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert me.json()["email"] == new


async def test_an_address_taken_meanwhile_is_a_409_page_and_the_link_stays(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    new = "taken." + user["email"]
    await users.client.patch("/api/v1/users/me", json={"email": new}, headers=users.bearer(user))
    token = await links.token_for(new)
    await users.register(email=new)
    page = await users.client.get(VERIFY_PAGE, params={"token": token})
    taken = await users.client.post(VERIFY_PAGE, data={"csrf_token": csrf_of(page), "token": token})
    assert_page(taken, 409)
    assert "taken" in taken.text
    # Rolled back like the JSON route's 409: the link is still open.
    assert_page(await users.client.get(VERIFY_PAGE, params={"token": token}), 200)


async def test_the_verify_form_needs_its_csrf_token(users: UsersHarness, links: LinkEvents) -> None:
    user = await users.register()
    token = await links.token_for(user["email"])
    await users.client.get(VERIFY_PAGE, params={"token": token})
    for data in ({"token": token}, {"csrf_token": "nope", "token": token}):
        assert_page(await users.client.post(VERIFY_PAGE, data=data), 403)
    cross = await users.client.post(
        VERIFY_PAGE,
        data={"csrf_token": "x", "token": token},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert_page(cross, 403)
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert me.json()["email_verified"] is False


async def test_the_stylesheet_is_served_and_the_pages_are_not_in_the_api_document(
    users: UsersHarness,
) -> None:
    sheet = await users.client.get("/account/static/pages.css")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    document = (await users.client.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/account")]
