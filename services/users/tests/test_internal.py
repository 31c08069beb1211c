"""The internal API auth calls: credentials and authorization, service tokens only."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from common.testing import assert_no_timing_difference
from sqlalchemy import select
from users.credentials.lockout import LockoutPolicy
from users.models import User
from users.passwords.hashing import PasswordHasher, cost_of

from .support import PASSWORD, TEST_ROUNDS, UsersHarness

VERIFY = "/internal/v1/credentials/verify"


async def test_credentials_by_username_or_email_in_any_case(users: UsersHarness) -> None:
    user = await users.register()
    headers = users.service_bearer("credentials:verify")
    for login in (user["username"], user["email"], user["email"].upper(), user["username"].upper()):
        response = await users.client.post(
            VERIFY, json={"login": login, "password": PASSWORD}, headers=headers
        )
        assert response.status_code == 200, login
        body = response.json()
        assert body["user_id"] == user["id"]
        assert body["roles"] == ["user"]
        assert body["permissions"] == []
        assert body["is_active"] is True


async def test_every_failure_is_the_same_401(users: UsersHarness) -> None:
    user = await users.register()
    gone = await users.register()
    deactivated = await users.client.delete(
        f"/api/v1/users/{gone['id']}", headers=users.bearer(gone)
    )
    assert deactivated.status_code == 204
    headers = users.service_bearer("credentials:verify")
    answers = []
    for login, password in (
        (user["username"], "wrong password here"),
        ("nobody_" + uuid.uuid4().hex[:6], PASSWORD),
        (gone["username"], PASSWORD),
        ("nul\x00" + user["username"], PASSWORD),  # PostgreSQL refuses NUL: never reaches it
    ):
        response = await users.client.post(
            VERIFY, json={"login": login, "password": password}, headers=headers
        )
        assert response.status_code == 401
        body = response.json()
        body.pop("instance", None)
        answers.append((body, response.headers.get("www-authenticate")))
    assert answers[0] == answers[1] == answers[2] == answers[3]


@pytest.mark.parametrize("scope", ["users:authorization", "", "credentials:verify users:read"])
async def test_verify_needs_its_scope(users: UsersHarness, scope: str) -> None:
    headers = users.service_bearer(scope)
    response = await users.client.post(
        VERIFY, json={"login": "x", "password": "y"}, headers=headers
    )
    # With the scope, the (unknown) credentials are checked: 401; without it: 403.
    assert response.status_code == (401 if "credentials:verify" in scope.split() else 403)


async def test_user_tokens_and_wrong_audiences_are_refused(users: UsersHarness) -> None:
    user = await users.register()
    body = {"login": user["username"], "password": PASSWORD}
    as_user = await users.client.post(VERIFY, json=body, headers=users.admin_bearer(user))
    assert as_user.status_code == 401  # a user token is not for the users audience
    token = users.tokens.access_token(
        "auth", session_id=None, scope="credentials:verify", audience="gatehouse-api"
    )
    wrong = await users.client.post(VERIFY, json=body, headers={"Authorization": f"Bearer {token}"})
    assert wrong.status_code == 401
    assert (await users.client.post(VERIFY, json=body)).status_code == 401


@pytest.mark.parametrize(
    "body",
    [{}, {"login": "", "password": "x"}, {"login": "x"}, {"login": "x", "password": 1}, []],
)
async def test_bad_verify_bodies_are_422(users: UsersHarness, body: object) -> None:
    response = await users.client.post(
        VERIFY, json=body, headers=users.service_bearer("credentials:verify")
    )
    assert response.status_code == 422


async def test_authorization_reports_current_roles(users: UsersHarness) -> None:
    user = await users.register()
    await users.make_admin(user)
    headers = users.service_bearer("users:authorization")
    response = await users.client.get(
        f"/internal/v1/users/{user['id']}/authorization", headers=headers
    )
    assert response.status_code == 200
    assert response.json() == {
        "user_id": user["id"],
        "username": user["username"],
        "email": user["email"],
        "full_name": user["full_name"],
        "is_active": True,
        "roles": ["admin", "user"],
        "permissions": ["clients:manage", "users:manage", "users:read"],
        "credentials_changed_at": None,
        "email_verified": False,
    }
    missing = await users.client.get(
        f"/internal/v1/users/{uuid.uuid4()}/authorization", headers=headers
    )
    assert missing.status_code == 404
    refused = await users.client.get(
        f"/internal/v1/users/{user['id']}/authorization",
        headers=users.service_bearer("credentials:verify"),
    )
    assert refused.status_code == 403


async def test_authorization_of_a_deactivated_account_says_so(users: UsersHarness) -> None:
    """A deactivated account is still answered (auth ends its sessions on `is_active: false`);
    only an unknown id is 404."""
    user = await users.register()
    deactivated = await users.client.delete(
        f"/api/v1/users/{user['id']}", headers=users.bearer(user)
    )
    assert deactivated.status_code == 204
    response = await users.client.get(
        f"/internal/v1/users/{user['id']}/authorization",
        headers=users.service_bearer("users:authorization"),
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert response.json()["roles"] == ["user"]
    assert response.json()["permissions"] == []


async def test_authorization_tells_when_the_password_last_changed(users: UsersHarness) -> None:
    """auth refuses refreshes of sessions opened before this time, with or without the event."""
    user = await users.register()
    before = datetime.now(UTC)
    changed = await users.change_password(user, "another long passphrase 9")
    assert changed.status_code == 204, changed.text
    after = datetime.now(UTC)
    response = await users.client.get(
        f"/internal/v1/users/{user['id']}/authorization",
        headers=users.service_bearer("users:authorization"),
    )
    assert response.status_code == 200
    changed_at = datetime.fromisoformat(response.json()["credentials_changed_at"])
    assert before <= changed_at <= after
    # The event carries the same instant, so every path ends the same sessions.
    events = await users.outbox(user["id"])
    (event,) = [row for row in events if row.event_type == "user.password_changed"]
    assert datetime.fromisoformat(event.payload["occurred_at"]) == changed_at
    # A login's rehash is not a credential change.
    users.state.hasher.rounds = TEST_ROUNDS + 1
    verified = await users.client.post(
        VERIFY,
        json={"login": user["username"], "password": "another long passphrase 9"},
        headers=users.service_bearer("credentials:verify"),
    )
    assert datetime.fromisoformat(verified.json()["credentials_changed_at"]) == changed_at


async def test_login_rehashes_when_the_cost_rose(users: UsersHarness) -> None:
    user = await users.register()
    users.state.hasher.rounds = TEST_ROUNDS + 1  # the operator raised BCRYPT_ROUNDS
    response = await users.client.post(
        VERIFY,
        json={"login": user["username"], "password": PASSWORD},
        headers=users.service_bearer("credentials:verify"),
    )
    assert response.status_code == 200
    async with users.database.sessionmaker() as db:
        stored = await db.scalar(select(User.password_hash).where(User.id == uuid.UUID(user["id"])))
    assert stored is not None
    assert cost_of(stored) == TEST_ROUNDS + 1


async def test_unknown_user_and_wrong_password_take_the_same_time(users: UsersHarness) -> None:
    """An unknown login is checked against a dummy hash: both failures cost one bcrypt, so the
    answer's timing does not reveal whether the account exists. Cost 10 makes a bcrypt (~50 ms)
    far more than the sign test's 2 ms floor, so a failure that skipped it would show. Pairs back
    to back, a sign test (common.testing says why: a fixed tolerance on two medians failed under
    load)."""
    users.replace_state(hasher=PasswordHasher(10, 2))
    # Twenty wrong passwords must not lock the account (a locked refusal is timed alike too, but
    # that is test_lockout's to show).
    policy = users.state.lockout
    users.replace_state(lockout=LockoutPolicy(1000, policy.clock, policy.reset_link_ttl))
    user = await users.register()
    headers = users.service_bearer("credentials:verify")

    async def seconds(login: str) -> float:
        started = time.perf_counter()
        response = await users.client.post(
            VERIFY, json={"login": login, "password": "wrong password here"}, headers=headers
        )
        assert response.status_code == 401
        return time.perf_counter() - started

    pairs = [
        (await seconds(user["username"]), await seconds("nobody_" + uuid.uuid4().hex[:8]))
        for _ in range(20)
    ]
    assert_no_timing_difference(pairs)
