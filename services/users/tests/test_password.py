"""PUT /users/me/password: the current password is required; the change ends every session."""

from __future__ import annotations

from .support import PASSWORD, UsersHarness

NEW = "another long passphrase 2026"


async def test_password_change(users: UsersHarness) -> None:
    user = await users.register()
    response = await users.change_password(user, NEW)
    assert response.status_code == 204, response.text
    assert (await users.check_credentials(user["username"], NEW)).status_code == 200
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 401
    # auth ends the sessions when it receives this event (API.md §2).
    events = [row.event_type for row in await users.outbox(user["id"])]
    assert events == ["user.registered", "user.password_changed"]


async def test_wrong_current_password_changes_nothing(users: UsersHarness) -> None:
    user = await users.register()
    response = await users.change_password(user, NEW, current="not my password")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "current_password"
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200
    assert [row.event_type for row in await users.outbox(user["id"])] == ["user.registered"]


async def test_new_password_follows_the_policy(users: UsersHarness) -> None:
    user = await users.register()
    for new in ("short", "iloveyou1", "x" * 129):
        response = await users.change_password(user, new)
        assert response.status_code == 422, new
    assert (await users.check_credentials(user["username"], PASSWORD)).status_code == 200


async def test_password_change_needs_a_token(users: UsersHarness) -> None:
    response = await users.client.put(
        "/api/v1/users/me/password", json={"current_password": PASSWORD, "new_password": NEW}
    )
    assert response.status_code == 401
