"""POST /password/forgot and /password/reset (API.md §8): reset links by email."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from common.events import Envelope
from common.testing import assert_no_timing_difference
from sqlalchemy import select
from users.models import PasswordResetToken

from .support import PASSWORD, UsersHarness

FORGOT = "/api/v1/users/password/forgot"
RESET = "/api/v1/users/password/reset"
NEW = "another long passphrase 2026"


class Mailbox:
    """The reset link events users publishes (what the notifier receives)."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def handle(self, envelope: Envelope) -> None:
        self.events.append(envelope)

    async def token_for(self, users: UsersHarness, email: str) -> str:
        response = await users.client.post(FORGOT, json={"email": email})
        assert response.status_code == 202, response.text
        await users.state.reset_links.drain()
        for _ in range(200):
            found = [e for e in self.events if e.data["email"].lower() == email.lower()]
            if found:
                self.events.remove(found[-1])
                token: str = found[-1].data["token"]
                return token
            await asyncio.sleep(0.02)
        raise AssertionError(f"no reset link event for {email}")


@pytest.fixture
async def mailbox(users: UsersHarness) -> AsyncIterator[Mailbox]:
    box = Mailbox()
    consumer = users.broker.client()
    await consumer.start()
    await consumer.consume("test.reset-links", ["user.password_reset_requested"], box.handle)
    yield box
    await consumer.close()


async def reset(users: UsersHarness, token: Any, password: Any = NEW) -> int:
    response = await users.client.post(RESET, json={"token": token, "new_password": password})
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
    return response.status_code


async def test_forgot_sends_a_link_and_keeps_only_its_hash(
    users: UsersHarness, mailbox: Mailbox
) -> None:
    user = await users.register(full_name="Ada Lovelace")
    token = await mailbox.token_for(users, user["email"].upper())
    assert len(token) == 43  # token_urlsafe(32): 256 bits
    async with users.database.sessionmaker() as db:
        rows = (await db.scalars(select(PasswordResetToken))).all()
    assert [row.token_hash for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert str(rows[0].user_id) == user["id"]
    lifetime = rows[0].expires_at - rows[0].created_at
    assert lifetime.total_seconds() == 1800
    # The row that carried the clear token is deleted once published (and so is the
    # registration's verification link); the others are kept.
    kinds = await users.settled_outbox_kinds(user["id"], ["user.registered"])
    assert kinds == ["user.registered"]
    assert all(token not in str(row.payload) for row in await users.outbox(with_links=True))


async def test_forgot_answers_the_same_for_unknown_and_deactivated_addresses(
    users: UsersHarness, mailbox: Mailbox
) -> None:
    known = await users.register()
    gone = await users.register()
    await users.client.delete(f"/api/v1/users/{gone['id']}", headers=users.bearer(gone))
    answers = []
    for email in (known["email"], "nobody.here@example.org", gone["email"]):
        response = await users.client.post(FORGOT, json={"email": email})
        answers.append((response.status_code, response.content))
    await users.state.reset_links.drain()
    assert answers[0][0] == 202
    assert answers[0] == answers[1] == answers[2]
    await asyncio.sleep(0.3)
    assert [e.data["user_id"] for e in mailbox.events] == [known["id"]]


async def test_forgot_takes_the_same_time_for_known_and_unknown_addresses(
    users: UsersHarness,
) -> None:
    known = await users.register()
    # The known address's rows once the relay has published (and deleted) its links.
    kinds = [row.event_type for row in await users.outbox(known["id"])]

    async def timed(email: str) -> float:
        started = time.perf_counter()
        response = await users.client.post(FORGOT, json={"email": email})
        elapsed = time.perf_counter() - started
        assert response.status_code == 202
        # Each request's work done before the next: the link issued, then published by the
        # outbox relay a moment after it commits (that publish, on this event loop, was landing
        # on the next request of the pair: the unknown address, slower under load every time).
        await users.state.reset_links.drain()
        assert await users.settled_outbox_kinds(known["id"], kinds) == kinds
        return elapsed

    # Back to back, so the machine's load lands on both of a pair (common.testing says why a
    # sign test and not a fixed tolerance on two medians, which failed under load).
    pairs = [
        (await timed(known["email"]), await timed(f"unknown.{i}@example.org")) for i in range(40)
    ]
    assert_no_timing_difference(pairs)


async def test_reset_sets_the_password_and_ends_the_sessions(
    users: UsersHarness, mailbox: Mailbox
) -> None:
    user = await users.register()
    token = await mailbox.token_for(users, user["email"])
    assert await reset(users, token) == 204
    assert (await users.check_credentials(user["username"], NEW)).status_code == 200
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 401
    me = (await users.client.get("/api/v1/users/me", headers=users.bearer(user))).json()
    assert me["email_verified"] is True
    # user.password_changed is what a password change emits: auth ends every session on it.
    kinds = [row.event_type for row in await users.outbox(user["id"])]
    assert kinds[-2:] == ["user.password_changed", "user.password_reset"]
    async with users.database.sessionmaker() as db:
        assert (await db.scalars(select(PasswordResetToken))).all() == []
    # Single use.
    assert await reset(users, token, "yet another passphrase 77") == 400
    assert (await users.check_credentials(user["username"], NEW)).status_code == 200


async def test_a_newer_link_voids_the_older(users: UsersHarness, mailbox: Mailbox) -> None:
    user = await users.register()
    older = await mailbox.token_for(users, user["email"])
    newer = await mailbox.token_for(users, user["email"])
    assert older != newer
    assert await reset(users, older) == 400
    assert await reset(users, newer) == 204


async def test_a_link_lives_thirty_minutes(users: UsersHarness, mailbox: Mailbox) -> None:
    user = await users.register()
    token = await mailbox.token_for(users, user["email"])
    users.clock.advance(30 * 60 - 5)
    assert await reset(users, token) == 204
    token = await mailbox.token_for(users, user["email"])
    users.clock.advance(30 * 60 + 1)
    assert await reset(users, token, "yet another passphrase 77") == 400
    assert (await users.check_credentials(user["username"], NEW)).status_code == 200


async def test_a_link_of_a_deactivated_account_is_dead(
    users: UsersHarness, mailbox: Mailbox
) -> None:
    user = await users.register()
    token = await mailbox.token_for(users, user["email"])
    await users.client.delete(f"/api/v1/users/{user['id']}", headers=users.bearer(user))
    assert await reset(users, token) == 400


async def test_the_new_password_follows_the_policy(users: UsersHarness, mailbox: Mailbox) -> None:
    user = await users.register()
    token = await mailbox.token_for(users, user["email"])
    for weak in ("short", "iloveyou1", "x" * 129, "nul\x00in the middle", 12345678, None):
        response = await users.client.post(RESET, json={"token": token, "new_password": weak})
        assert response.status_code == 422, weak
        assert response.json()["errors"][0]["field"] == "new_password"
    # The refusals did not use the link up.
    assert await reset(users, token) == 204


@pytest.mark.parametrize(
    "token",
    [
        "",
        " ",
        "x" * 42,
        "x" * 44,
        "A" * 43,  # the right shape, never issued
        "x" * 200_000,
        "é" * 43,
        "\u202e" + "a" * 42,
        "a" * 42 + "\x00",
        "a" * 42 + "=",
        "../../etc/passwd",
        "%00" * 15,
    ],
)
async def test_bad_tokens_are_400(users: UsersHarness, token: str) -> None:
    assert await reset(users, token) == 400


@pytest.mark.parametrize(
    "body",
    [
        {"token": 123, "new_password": NEW},
        {"token": None, "new_password": NEW},
        {"token": ["a" * 43], "new_password": NEW},
        {"token": {"token": "a"}, "new_password": NEW},
        {"token": True, "new_password": NEW},
        {"new_password": NEW},
        {"token": "a" * 43},
        {"token": "a" * 43, "new_password": NEW, "email": "x@example.org"},
        [],
        "token",
    ],
)
async def test_malformed_reset_bodies_are_422(users: UsersHarness, body: Any) -> None:
    response = await users.client.post(RESET, json=body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "content",
    [
        b'{"email": "not an address"}',
        b'{"email": 5}',
        b'{"email": null}',
        b"{}",
        b'{"email": "a@example.org", "extra": 1}',
        b'["a@example.org"]',
        b"not json",
        b'{"email": "' + b"a" * 400 + b'@example.org"}',
    ],
)
async def test_malformed_forgot_bodies_are_422(users: UsersHarness, content: bytes) -> None:
    response = await users.client.post(
        FORGOT, content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text


async def test_no_log_line_shows_the_token(
    users: UsersHarness, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await users.register()
    token = await mailbox.token_for(users, user["email"])
    assert await reset(users, token) == 204
    assert await reset(users, token) == 400
    await asyncio.sleep(0.3)
    assert caplog.records
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token not in str(record.__dict__)
