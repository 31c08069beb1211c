"""A password change or a deactivation ends the user's sessions at auth on the request path,
after the commit and before the answer; the event in the outbox is the backup when auth cannot
be reached (users.upstream.auth)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from users.models import User

from .support import UsersHarness

NEW_PASSWORD = "another long passphrase 9"


async def committed_change_time(users: UsersHarness, user_id: str) -> datetime | None:
    """What another connection sees: proof the change was committed before auth was called."""
    async with users.database.sessionmaker() as db:
        return await db.scalar(
            select(User.credentials_changed_at).where(User.id == uuid.UUID(user_id))
        )


async def test_a_password_change_ends_sessions_at_auth_once_committed(users: UsersHarness) -> None:
    user = await users.register()

    async def seen(user_id: str) -> datetime | None:
        return await committed_change_time(users, user_id)

    users.auth.on_end = seen
    changed = await users.change_password(user, NEW_PASSWORD)
    assert changed.status_code == 204, changed.text
    (call,) = users.auth.calls  # made before the 204
    assert call.user_id == user["id"]
    assert call.body["reason"] == "password_changed"
    assert call.seen is not None
    assert datetime.fromisoformat(call.body["changed_at"]) == call.seen
    (event,) = [
        e for e in await users.outbox(user["id"]) if e.event_type == "user.password_changed"
    ]
    assert datetime.fromisoformat(event.payload["occurred_at"]) == call.seen  # the backup


async def test_a_deactivation_ends_sessions_at_auth(users: UsersHarness) -> None:
    user = await users.register()
    gone = await users.client.delete(f"/api/v1/users/{user['id']}", headers=users.bearer(user))
    assert gone.status_code == 204
    (call,) = users.auth.calls
    assert (call.user_id, call.body["reason"]) == (user["id"], "deactivated")
    (event,) = [e for e in await users.outbox(user["id"]) if e.event_type == "user.deactivated"]
    changed_at = datetime.fromisoformat(call.body["changed_at"])
    assert datetime.fromisoformat(event.payload["occurred_at"]) == changed_at
    # Deactivating again changes nothing and calls nobody.
    assert (
        await users.client.delete(
            f"/api/v1/users/{user['id']}", headers=users.admin_bearer(await users.register())
        )
    ).status_code == 204
    assert len(users.auth.calls) == 1


async def test_auth_unreachable_the_change_still_succeeds_and_the_event_is_the_backup(
    users: UsersHarness,
) -> None:
    user = await users.register()
    users.auth.down = True
    changed = await users.change_password(user, NEW_PASSWORD)
    assert changed.status_code == 204
    assert users.auth.calls == []
    events = await users.outbox(user["id"])
    assert [e.event_type for e in events if e.event_type == "user.password_changed"] == [
        "user.password_changed"
    ]


async def test_a_refused_change_calls_nobody(users: UsersHarness) -> None:
    user = await users.register()
    refused = await users.change_password(user, NEW_PASSWORD, current="not the password at all")
    assert refused.status_code == 422  # a wrong current password
    assert users.auth.calls == []
    assert await committed_change_time(users, user["id"]) is None
