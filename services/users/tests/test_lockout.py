"""Account lockout where the password is checked (API.md §10): LOCKOUT_THRESHOLD failed passwords
of one account within 15 minutes lock its password logins for 1, 2, 4 … 60 minutes; the refusal
is a wrong password's; the owner is sent a reset link; a reset ends the lock."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from common.events import Envelope
from common.testing import assert_no_timing_difference
from sqlalchemy import select
from users.credentials.lockout import LockoutPolicy, lockout_period
from users.models import LoginLockout, PasswordResetToken
from users.passwords.hashing import PasswordHasher
from users.recovery.tokens import token_hash
from users.settings import UsersSettings

from .support import PASSWORD, UsersHarness

WRONG = "not the password at all"
NEW_PASSWORD = "a fresh passphrase after the lock"


async def fail(users: UsersHarness, login: str, times: int) -> None:
    for _ in range(times):
        assert (await users.check_credentials(login, WRONG)).status_code == 401


def comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Everything of an answer but the request id, which is each request's own."""
    headers = sorted((k, v) for k, v in response.headers.items() if k != "x-request-id")
    return response.status_code, response.content, headers


class Notices:
    """The `user.locked_out` events users publishes (what the notifier receives)."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def handle(self, envelope: Envelope) -> None:
        self.events.append(envelope)

    async def of(self, users: UsersHarness, user_id: str, expected: int) -> list[dict[str, Any]]:
        """The account's notices once `expected` of them are published. Each outbox row is
        deleted once the broker confirmed it (a secret event: the reset link's token)."""
        for _ in range(250):
            pending = [
                row for row in await users.outbox(user_id) if row.event_type == "user.locked_out"
            ]
            found = [
                e.data
                for e in self.events
                if e.type == "user.locked_out" and e.data["user_id"] == user_id
            ]
            if not pending and len(found) >= expected:
                break
            await asyncio.sleep(0.02)
        assert len(found) == expected, found
        return found


@pytest.fixture
async def notices(users: UsersHarness) -> AsyncIterator[Notices]:
    box = Notices()
    consumer = users.broker.client()
    await consumer.start()
    await consumer.consume(
        "test.lockout-notices", ["user.locked_out", "user.password_reset_requested"], box.handle
    )
    yield box
    await consumer.close()


async def test_ten_failures_lock_the_account_and_the_refusal_is_a_wrong_passwords(
    users: UsersHarness, notices: Notices
) -> None:
    user = await users.register()
    await fail(users, user["username"], 9)
    wrong = await users.check_credentials(user["username"], WRONG)  # the tenth: locks
    assert wrong.status_code == 401
    locked_right = await users.check_credentials(user["username"], PASSWORD)
    locked_wrong = await users.check_credentials(user["username"], WRONG)
    # Byte for byte a wrong password's answer: status, body, every header but the request id.
    assert comparable(locked_right) == comparable(wrong) == comparable(locked_wrong)
    assert wrong.json()["detail"] == "Incorrect username or password."
    [notice] = await notices.of(users, user["id"], 1)
    assert notice["email"] == user["email"]


async def test_nine_failures_do_not_lock_and_a_success_forgets_them(
    users: UsersHarness, notices: Notices
) -> None:
    user = await users.register()
    await fail(users, user["username"], 9)
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200
    await fail(users, user["username"], 9)  # counted from zero again
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200
    await notices.of(users, user["id"], 0)


async def test_failures_count_against_the_canonical_account_however_it_is_named(
    users: UsersHarness, notices: Notices
) -> None:
    user = await users.register()
    names = [user["username"], user["email"], user["email"].upper(), user["username"].upper()]
    for attempt in range(10):
        assert (
            await users.check_credentials(names[attempt % len(names)], WRONG)
        ).status_code == 401
    assert (await users.check_credentials(user["email"], PASSWORD)).status_code == 401
    await notices.of(users, user["id"], 1)


async def test_another_account_is_not_locked(users: UsersHarness) -> None:
    target, bystander = await users.register(), await users.register()
    await fail(users, target["username"], 10)
    assert (await users.check_credentials(bystander["username"], PASSWORD)).status_code == 200
    assert (await users.check_credentials(target["username"], PASSWORD)).status_code == 401


async def test_the_window_slides_over_15_minutes(users: UsersHarness) -> None:
    user = await users.register()
    await fail(users, user["username"], 9)
    users.clock.advance(15 * 60 + 1)  # those nine are now too old to count
    await fail(users, user["username"], 9)
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200
    # Five, ten minutes, five more: ten within 15 minutes although no boundary aligns.
    await fail(users, user["username"], 5)
    users.clock.advance(10 * 60)
    await fail(users, user["username"], 4)
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200
    await fail(users, user["username"], 5)
    users.clock.advance(10 * 60)
    await fail(users, user["username"], 5)
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 401


def test_the_lockout_periods_double_up_to_an_hour() -> None:
    minutes = [lockout_period(n) / timedelta(minutes=1) for n in range(1, 10)]
    assert minutes == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert lockout_period(10_000) == timedelta(hours=1)


async def test_each_lockout_lasts_twice_the_last_until_an_hour(
    users: UsersHarness, notices: Notices
) -> None:
    user = await users.register()
    for minutes in (1, 2, 4, 8, 16, 32, 60, 60):
        await fail(users, user["username"], 10)
        users.clock.advance(minutes * 60 - 2)
        # Still locked a moment before the end (checking does not count, nor unlock).
        assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 401
        users.clock.advance(3)
    # The last lock is over: the right password works, and the next lockout is 1 minute again.
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200
    await fail(users, user["username"], 10)
    users.clock.advance(61)
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200
    await notices.of(users, user["id"], 9)


async def test_failures_while_locked_are_not_counted(users: UsersHarness, notices: Notices) -> None:
    user = await users.register()
    await fail(users, user["username"], 10)
    await fail(users, user["username"], 30)  # refused, not counted: no second lockout
    users.clock.advance(61)
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200
    await notices.of(users, user["id"], 1)


async def test_concurrent_failures_lock_once(users: UsersHarness, notices: Notices) -> None:
    """The count is taken under the account's row lock: 25 failures at once lock it exactly once,
    and every answer is the same 401."""
    user = await users.register()
    # Room for every check at once (the default queue would answer some with 503).
    previous = users.state.hasher
    users.replace_state(hasher=PasswordHasher(previous.rounds, 4, queue_size=32))
    previous.close()
    answers = await asyncio.gather(
        *(users.check_credentials(user["username"], WRONG) for _ in range(25))
    )
    assert {response.status_code for response in answers} == {401}
    assert len({response.content for response in answers}) == 1
    await notices.of(users, user["id"], 1)
    async with users.database.sessionmaker() as db:
        row = await db.get(LoginLockout, uuid.UUID(user["id"]))
    assert row is not None
    assert row.lockouts == 1


async def test_the_notice_carries_a_reset_link_that_ends_the_lock(
    users: UsersHarness, notices: Notices
) -> None:
    user = await users.register()
    await fail(users, user["username"], 10)
    [data] = await notices.of(users, user["id"], 1)
    assert set(data) == {
        "user_id",
        "email",
        "username",
        "full_name",
        "locked_until",
        "token",
        "expires_at",
    }
    locked_until = datetime.fromisoformat(data["locked_until"])
    assert timedelta(seconds=55) < locked_until - users.clock() <= timedelta(minutes=1)
    # The link is a reset link like any other: its hash stored, 30 minutes.
    async with users.database.sessionmaker() as db:
        link = await db.scalar(
            select(PasswordResetToken).where(
                PasswordResetToken.token_hash == token_hash(data["token"])
            )
        )
    assert link is not None
    assert link.user_id == uuid.UUID(user["id"])
    reset = await users.client.post(
        "/api/v1/users/password/reset",
        json={"token": data["token"], "new_password": NEW_PASSWORD},
    )
    assert reset.status_code == 204, reset.text
    # Unlocked at once, with the new password only; the link is used up.
    assert (await users.check_credentials(user["username"], NEW_PASSWORD)).status_code == 200
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 401
    again = await users.client.post(
        "/api/v1/users/password/reset", json={"token": data["token"], "new_password": PASSWORD}
    )
    assert again.status_code == 400


async def test_a_forgot_password_link_ends_the_lock_too(
    users: UsersHarness, notices: Notices
) -> None:
    user = await users.register()
    await fail(users, user["username"], 10)
    forgot = await users.client.post("/api/v1/users/password/forgot", json={"email": user["email"]})
    assert forgot.status_code == 202
    await users.state.reset_links.drain()
    await notices.of(users, user["id"], 1)  # the lockout's
    for _ in range(250):
        requested = [
            e.data
            for e in notices.events
            if e.type == "user.password_reset_requested" and e.data["user_id"] == user["id"]
        ]
        if requested:
            break
        await asyncio.sleep(0.02)
    [link] = requested
    reset = await users.client.post(
        "/api/v1/users/password/reset",
        json={"token": link["token"], "new_password": NEW_PASSWORD},
    )
    assert reset.status_code == 204
    assert (await users.check_credentials(user["email"], NEW_PASSWORD)).status_code == 200


async def test_the_owners_password_change_ends_the_lock(users: UsersHarness) -> None:
    user = await users.register()
    await fail(users, user["username"], 10)
    changed = await users.change_password(user, NEW_PASSWORD)
    assert changed.status_code == 204, changed.text
    assert (await users.check_credentials(user["username"], NEW_PASSWORD)).status_code == 200


async def test_deactivated_and_unknown_accounts_are_not_counted(
    users: UsersHarness, notices: Notices
) -> None:
    gone = await users.register()
    assert (
        await users.client.delete(f"/api/v1/users/{gone['id']}", headers=users.bearer(gone))
    ).status_code == 204
    await fail(users, gone["username"], 12)
    await fail(users, "nobody_" + uuid.uuid4().hex[:8], 12)
    await notices.of(users, gone["id"], 0)
    async with users.database.sessionmaker() as db:
        assert await db.get(LoginLockout, uuid.UUID(gone["id"])) is None


async def test_lockout_threshold_is_a_setting(users: UsersHarness) -> None:
    users.replace_state(lockout=type(users.state.lockout)(3, users.clock, timedelta(minutes=30)))
    user = await users.register()
    await fail(users, user["username"], 3)
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 401
    assert UsersSettings(environment="test").lockout_threshold == 10
    for bad in (0, -1, 1001, "ten"):
        with pytest.raises(ValueError, match="lockout_threshold"):
            UsersSettings(environment="test", lockout_threshold=bad)


async def test_a_locked_refusal_takes_as_long_as_a_wrong_password(users: UsersHarness) -> None:
    """The hash is computed, and the same statements run, whether the account is locked or the
    password wrong, right or not: the timing tells neither. Pairs back to back, a sign test
    (common.testing says why); the suite's cheap bcrypt leaves any database difference exposed."""
    locked, open_account = await users.register(), await users.register()
    await fail(users, locked["username"], 10)
    # The open account's sixty failures must not lock it too (the lock above lasts a minute).
    policy = users.state.lockout
    users.replace_state(lockout=LockoutPolicy(1000, policy.clock, policy.reset_link_ttl))

    async def seconds(login: str, password: str) -> float:
        started = time.perf_counter()
        assert (await users.check_credentials(login, password)).status_code == 401
        return time.perf_counter() - started

    right_pairs: list[tuple[float, float]] = []
    wrong_pairs: list[tuple[float, float]] = []
    for _ in range(30):
        right_pairs.append(
            (
                await seconds(locked["username"], PASSWORD),
                await seconds(open_account["username"], WRONG),
            )
        )
        wrong_pairs.append(
            (
                await seconds(locked["username"], WRONG),
                await seconds(open_account["username"], WRONG),
            )
        )
    assert_no_timing_difference(right_pairs)
    assert_no_timing_difference(wrong_pairs)


async def test_locking_and_unlocking_are_audited_without_secrets(
    users: UsersHarness, notices: Notices, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gatehouse.audit")
    user = await users.register()
    await fail(users, user["username"], 10)
    await users.check_credentials(user["username"], PASSWORD)
    [notice] = await notices.of(users, user["id"], 1)
    changed = await users.change_password(user, NEW_PASSWORD)
    assert changed.status_code == 204
    records = [r for r in caplog.records if r.name == "gatehouse.audit"]
    by_name = {r.getMessage(): r for r in records}
    assert by_name["account.locked"].__dict__["user_id"] == user["id"]
    assert by_name["account.locked"].__dict__["lockouts"] == 1
    assert by_name["login.refused_locked"].__dict__["user_id"] == user["id"]
    assert by_name["account.unlocked"].__dict__["user_id"] == user["id"]
    text = " ".join(str(vars(r)) for r in caplog.records)
    for secret in (PASSWORD, WRONG, NEW_PASSWORD, notice["token"]):
        assert secret not in text
