"""Email verification (API.md §8): the registration's link, resends, and address changes that
wait for the link sent to the new address. Every link works once, for its purpose only, within
24 hours, and only while it is the account's newest."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import pytest
from sqlalchemy import select
from users.models import EmailVerificationToken

from .support import PASSWORD, LinkEvents, UsersHarness

VERIFY = "/api/v1/users/email/verify"
RESEND = "/api/v1/users/me/email/verification"
ME = "/api/v1/users/me"
DAY = 86_400


async def verify(users: UsersHarness, token: Any) -> int:
    response = await users.client.post(VERIFY, json={"token": token})
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == response.status_code
    return response.status_code


async def me(users: UsersHarness, user: dict[str, Any]) -> dict[str, Any]:
    response = await users.client.get(ME, headers=users.bearer(user))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def change_email(users: UsersHarness, user: dict[str, Any], email: str) -> Any:
    return await users.client.patch(ME, json={"email": email}, headers=users.bearer(user))


async def logs_in(users: UsersHarness, login: str) -> bool:
    return (await users.check_credentials(login, PASSWORD)).status_code == 200


# --- the registration's link ----------------------------------------------------------------------
async def test_registration_sends_a_link_and_keeps_only_its_hash(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register(full_name="Ada Lovelace")
    assert user["email_verified"] is False
    assert user["pending_email"] is None
    event = await links.next_for(user["email"])
    token = event.data["token"]
    assert len(token) == 43  # token_urlsafe(32): 256 bits
    assert event.data["reason"] == "registration"
    assert event.data["previous_email"] is None
    assert event.data["full_name"] == "Ada Lovelace"
    async with users.database.sessionmaker() as session:
        rows = (await session.scalars(select(EmailVerificationToken))).all()
    assert [row.token_hash for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert rows[0].email == user["email"]
    assert (rows[0].expires_at - rows[0].created_at).total_seconds() == DAY
    # The row that carried the clear token is deleted once published; the kept ones lack it.
    kinds = await users.settled_outbox_kinds(user["id"], ["user.registered"])
    assert kinds == ["user.registered"]
    assert all(token not in str(row.payload) for row in await users.outbox(with_links=True))


async def test_the_link_verifies_the_address_once(users: UsersHarness, links: LinkEvents) -> None:
    user = await users.register()
    token = await links.token_for(user["email"])
    assert await verify(users, token) == 204
    after = await me(users, user)
    assert after["email_verified"] is True
    assert after["email"] == user["email"]
    assert await verify(users, token) == 400
    events = [row.event_type for row in await users.outbox(user["id"])]
    assert events == ["user.registered", "user.email_verified"]
    async with users.database.sessionmaker() as session:
        assert (await session.scalars(select(EmailVerificationToken))).all() == []


async def test_two_uses_at_once_verify_once(users: UsersHarness, links: LinkEvents) -> None:
    user = await users.register()
    token = await links.token_for(user["email"])
    statuses = await asyncio.gather(*(verify(users, token) for _ in range(4)))
    assert sorted(statuses) == [204, 400, 400, 400]
    events = [row.event_type for row in await users.outbox(user["id"])]
    assert events.count("user.email_verified") == 1


async def test_a_link_dies_after_24_hours(users: UsersHarness, links: LinkEvents) -> None:
    user = await users.register()
    token = await links.token_for(user["email"])
    users.clock.advance(DAY + 1)
    assert await verify(users, token) == 400
    assert (await me(users, user))["email_verified"] is False


async def test_a_link_works_until_its_last_second(users: UsersHarness, links: LinkEvents) -> None:
    user = await users.register()
    token = await links.token_for(user["email"])
    users.clock.advance(DAY - 5)
    assert await verify(users, token) == 204


async def test_a_deactivated_accounts_link_is_refused(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    token = await links.token_for(user["email"])
    gone = await users.client.delete(f"/api/v1/users/{user['id']}", headers=users.bearer(user))
    assert gone.status_code == 204
    assert await verify(users, token) == 400


async def test_a_reset_link_is_not_a_verification_link_nor_the_other_way(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    verification = await links.token_for(user["email"])
    forgot = await users.client.post("/api/v1/users/password/forgot", json={"email": user["email"]})
    assert forgot.status_code == 202
    await users.state.reset_links.drain()
    reset = await links.token_for(user["email"], "user.password_reset_requested")
    assert await verify(users, reset) == 400
    refused = await users.client.post(
        "/api/v1/users/password/reset",
        json={"token": verification, "new_password": "another long passphrase 2026"},
    )
    assert refused.status_code == 400
    # Both still work for their own purpose.
    assert await verify(users, verification) == 204
    done = await users.client.post(
        "/api/v1/users/password/reset",
        json={"token": reset, "new_password": "another long passphrase 2026"},
    )
    assert done.status_code == 204


async def test_a_reset_verifies_the_address(users: UsersHarness, links: LinkEvents) -> None:
    """The reset link was read at the address: it counts as verified, link or no link."""
    user = await users.register()
    await links.token_for(user["email"])
    await users.client.post("/api/v1/users/password/forgot", json={"email": user["email"]})
    await users.state.reset_links.drain()
    reset = await links.token_for(user["email"], "user.password_reset_requested")
    assert (await me(users, user))["email_verified"] is False
    done = await users.client.post(
        "/api/v1/users/password/reset",
        json={"token": reset, "new_password": "another long passphrase 2026"},
    )
    assert done.status_code == 204
    assert (await me(users, user))["email_verified"] is True


# --- bad tokens and bodies ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        "A" * 42,
        "A" * 43,  # well formed, never issued
        "A" * 44,
        "A" * 10_000,
        "=" * 43,
        "A" * 42 + "=",
        "A" * 42 + "\x00",
        "é" * 43,
        "\u202e" + "A" * 42,
        " " + "A" * 42,
        "../" * 15,
        "'; DROP TABLE users; --" + "A" * 20,
        "%41" * 15,
    ],
)
async def test_garbage_tokens_are_400(users: UsersHarness, token: str) -> None:
    assert await verify(users, token) == 400


@pytest.mark.parametrize("token", [None, 123, 1.5, True, [], {}, ["A" * 43]])
async def test_a_token_that_is_not_a_string_is_422_naming_it(
    users: UsersHarness, token: Any
) -> None:
    response = await users.client.post(VERIFY, json={"token": token})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in response.json()["errors"]] == ["token"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "token"), ({"token": "A" * 43, "email": "x@example.org"}, "email")],
)
async def test_missing_or_extra_fields_are_422_naming_them(
    users: UsersHarness, body: dict[str, Any], field: str
) -> None:
    response = await users.client.post(VERIFY, json=body)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"not json", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b'["token"]', "application/json"),
        (b"token=abc", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_body_that_is_no_json_object_is_422(
    users: UsersHarness, content: bytes, content_type: str
) -> None:
    response = await users.client.post(
        VERIFY, content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]


# --- resend ---------------------------------------------------------------------------------------
async def test_a_resend_sends_a_new_link_and_voids_the_old(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    first = await links.token_for(user["email"])
    response = await users.client.post(RESEND, headers=users.bearer(user))
    assert response.status_code == 202
    assert set(response.json()) == {"detail"}
    event = await links.next_for(user["email"])
    assert event.data["reason"] == "resend"
    second = event.data["token"]
    assert second != first
    assert await verify(users, first) == 400
    assert await verify(users, second) == 204


async def test_a_resend_for_a_verified_address_sends_nothing(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    assert await verify(users, await links.token_for(user["email"])) == 204
    response = await users.client.post(RESEND, headers=users.bearer(user))
    assert response.status_code == 202
    assert await links.none_for(user["email"])


async def test_a_resend_needs_a_token(users: UsersHarness) -> None:
    response = await users.client.post(RESEND)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


# --- email change ---------------------------------------------------------------------------------
async def test_an_email_change_waits_for_the_link_to_the_new_address(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    await links.token_for(user["email"])
    new = "new." + user["email"]
    response = await change_email(users, user, new)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == user["email"]
    assert response.json()["pending_email"] == new
    event = await links.next_for(new)
    assert event.data["reason"] == "change"
    assert event.data["previous_email"] == user["email"]  # the notifier tells the old address
    assert await links.none_for(user["email"], settle=0.1)
    assert not await logs_in(users, new)  # not the account's address yet
    assert await verify(users, event.data["token"]) == 204
    after = await me(users, user)
    assert after["email"] == new
    assert after["pending_email"] is None
    assert after["email_verified"] is True
    assert await logs_in(users, new)
    assert not await logs_in(users, user["email"])
    events = [row.event_type for row in await users.outbox(user["id"])]
    assert events == ["user.registered", "user.email_verified", "user.updated"]
    [updated] = [r for r in await users.outbox(user["id"]) if r.event_type == "user.updated"]
    assert updated.payload["data"]["changed"] == ["email"]


async def test_a_change_voids_the_old_addresses_link(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    registration = await links.token_for(user["email"])
    assert (await change_email(users, user, "moved." + user["email"])).status_code == 200
    assert await verify(users, registration) == 400


async def test_a_second_change_voids_the_first_changes_link(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    first, second = "one." + user["email"], "two." + user["email"]
    await change_email(users, user, first)
    first_token = await links.token_for(first)
    await change_email(users, user, second)
    second_token = await links.token_for(second)
    assert await verify(users, first_token) == 400
    assert await verify(users, second_token) == 204
    assert (await me(users, user))["email"] == second


async def test_changing_back_to_the_current_address_cancels_the_change(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    pending = "pending." + user["email"]
    await change_email(users, user, pending)
    token = await links.token_for(pending)
    back = await change_email(users, user, user["email"])
    assert back.status_code == 200
    assert back.json()["pending_email"] is None
    assert await verify(users, token) == 400
    assert (await me(users, user))["email"] == user["email"]


async def test_a_change_of_case_only_is_made_at_once(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    local, _, domain = user["email"].partition("@")
    respelled = f"{local.upper()}@{domain}"
    response = await change_email(users, user, respelled)
    assert response.status_code == 200
    assert response.json()["email"] == respelled
    assert response.json()["pending_email"] is None
    assert await links.none_for(respelled, settle=0.1)


async def test_a_change_to_a_taken_address_is_409(users: UsersHarness) -> None:
    first = await users.register()
    second = await users.register()
    response = await change_email(users, second, first["email"].upper())
    assert response.status_code == 409
    assert (await me(users, second))["pending_email"] is None


async def test_an_address_taken_meanwhile_is_409_and_the_link_stays(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    wanted = "wanted." + user["email"]
    await change_email(users, user, wanted)
    token = await links.token_for(wanted)
    # Someone registers the address before the link is used: pending addresses are not held.
    other = await users.register(email=wanted.upper())
    assert await verify(users, token) == 409
    after = await me(users, user)
    assert after["email"] == user["email"]
    assert after["pending_email"] == wanted
    # Once the other account lets the address go, the same link completes the change.
    await change_email(users, other, "elsewhere." + other["email"])
    moved = await links.token_for("elsewhere." + other["email"])
    assert await verify(users, moved) == 204
    assert await verify(users, token) == 204
    assert (await me(users, user))["email"] == wanted


async def test_a_change_with_a_username_change_applies_both(
    users: UsersHarness, links: LinkEvents
) -> None:
    user = await users.register()
    new = "both." + user["email"]
    name = "renamed_" + user["username"][-6:]
    response = await users.client.patch(
        ME, json={"email": new, "username": name}, headers=users.bearer(user)
    )
    assert response.status_code == 200
    assert response.json()["username"] == name
    assert response.json()["pending_email"] == new
    assert await verify(users, await links.token_for(new)) == 204


async def test_auth_is_told_whether_the_address_is_verified(
    users: UsersHarness, links: LinkEvents
) -> None:
    """auth refuses the login of an unverified address under REQUIRE_VERIFIED_EMAIL."""
    user = await users.register()

    async def verified() -> Any:
        response = await users.check_credentials(user["username"], PASSWORD)
        assert response.status_code == 200
        return response.json()["email_verified"]

    assert await verified() is False
    assert await verify(users, await links.token_for(user["email"])) == 204
    assert await verified() is True


async def test_a_link_token_is_in_no_log_line_and_no_metric(
    users: UsersHarness, links: LinkEvents, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await users.register()
    token = await links.token_for(user["email"])
    await users.client.get("/account/verify-email", params={"token": token})
    assert await verify(users, token) == 204
    assert await verify(users, token) == 400  # the refusal does not quote it either
    await users.client.get("/account/verify-email", params={"token": token})
    metrics = await users.client.get("/metrics")
    assert token not in metrics.text
    # The test's own HTTP client logs the URLs it requests; the service logs none of them.
    served = [
        r for r in caplog.records if not (r.name == "httpx" and "//users.test/" in str(r.args))
    ]
    assert [vars(record) for record in served if token in str(vars(record))] == []
    assert all(token not in str(row.payload) for row in await users.outbox(with_links=True))
