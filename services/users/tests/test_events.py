"""Account events: one outbox row per change, in the change's transaction, then published."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from common.errors import Conflict
from common.events import SECRET_EVENT_TYPES, Envelope
from common.logs import request_id_var
from sqlalchemy import func, select
from users.accounts.schemas import UserCreate
from users.accounts.service import Accounts
from users.models import OutboxEvent, User

from .support import PASSWORD, UsersHarness


async def test_registration_event_carries_what_the_notifier_needs(users: UsersHarness) -> None:
    user = await users.register(full_name="Ada Lovelace")
    [row] = await users.outbox(user["id"])
    envelope = Envelope.model_validate(row.payload)
    assert envelope.type == "user.registered"
    assert envelope.id == row.event_id
    assert envelope.data == {
        "user_id": user["id"],
        "email": user["email"],
        "username": user["username"],
        "full_name": "Ada Lovelace",
        "verification_follows": True,  # the welcome email is the one with the link
    }
    assert PASSWORD not in str(row.payload)


async def test_a_failed_transaction_leaves_no_event(users: UsersHarness) -> None:
    existing = await users.register()
    hasher = users.state.hasher
    data = UserCreate(
        email=f"x{uuid.uuid4().hex[:6]}@example.org",
        username=f"u{uuid.uuid4().hex[:6]}",
        password=PASSWORD,
        full_name="Rolled Back",
    )
    async with users.database.sessionmaker() as db, db.begin():
        await Accounts(db, hasher).register(data)
        await db.rollback()
    duplicate = data.model_copy(update={"username": existing["username"]})
    async with users.database.sessionmaker() as db, db.begin():
        with pytest.raises(Conflict):
            await Accounts(db, hasher).register(duplicate)
    async with users.database.sessionmaker() as db:
        assert (
            await db.scalar(
                select(func.count()).select_from(User).where(User.full_name == "Rolled Back")
            )
            == 0
        )
        # The existing account's registration (its verification link's row is deleted once
        # published, whenever the relay gets to it: not counted).
        kept = select(func.count()).where(OutboxEvent.event_type.not_in(SECRET_EVENT_TYPES))
        assert await db.scalar(kept) == 1


async def test_concurrent_duplicate_registrations_make_one_account_and_one_event(
    users: UsersHarness,
) -> None:
    body = {
        "email": "race@example.org",
        "username": "race_user",
        "password": PASSWORD,
        "full_name": "Race",
    }
    responses = await asyncio.gather(
        *(users.client.post("/api/v1/users/", json=body) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    assert len(await users.outbox()) == 1


async def test_the_relay_publishes_each_event_once(users: UsersHarness) -> None:
    received: list[Envelope] = []
    request_ids: list[str | None] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)
        request_ids.append(request_id_var.get())

    consumer = users.broker.client()
    await consumer.start()
    await consumer.consume("test.users-events", ["user.*"], handler)
    try:
        user = await users.register()
        await users.client.delete(
            f"/api/v1/users/{user['id']}",
            headers={**users.bearer(user), "X-Request-ID": "req-deactivate-42"},
        )
        for _ in range(100):
            if len(received) >= 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        await consumer.close()
    assert [e.type for e in received] == [
        "user.registered",
        "user.email_verification_requested",
        "user.deactivated",
    ]
    # The consumer handles each event under the request id of the request that caused it.
    assert request_ids[2] == "req-deactivate-42"
    assert request_ids[0] is not None
    rows = await users.outbox(user["id"])
    assert all(row.sent_at is not None for row in rows)
