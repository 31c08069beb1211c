"""The caller's sessions (API.md §10): listed newest first, ended one by one or all but the
current one; an admin does the same with `?user_id=`."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import pytest
from common.revocation import is_revoked

from .support import AuthHarness, bearer, claims_of, introspect_as_gateway
from .users_double import Account

SESSIONS = "/api/v1/auth/sessions"


async def login_from(auth: AuthHarness, account: Account, ip: str, agent: str) -> dict[str, Any]:
    response = await auth.client.post(
        "/api/v1/auth/login",
        data={"username": account.username, "password": account.password},
        headers={"X-Forwarded-For": ip, "User-Agent": agent},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(auth: AuthHarness, token: str, **params: str) -> list[dict[str, Any]]:
    response = await auth.client.get(SESSIONS, headers=bearer(token), params=params)
    assert response.status_code == 200, response.text
    sessions: list[dict[str, Any]] = response.json()
    return sessions


def sid(pair: dict[str, Any]) -> str:
    session_id: str = claims_of(pair["access_token"])["sid"]
    return session_id


async def test_sessions_are_listed_newest_first_with_the_current_one_marked(
    auth: AuthHarness, account: Account
) -> None:
    auth.clock.advance(-5)  # back, not forward: tokens signed "in the future" are refused
    first = await login_from(auth, account, "203.0.113.7", "Firefox/140.0")
    auth.clock.advance(5)
    second = await login_from(auth, account, "198.51.100.9", "curl/8.5.0")
    other = auth.users.add()
    await auth.login(other)  # someone else's session is never listed

    sessions = await listed(auth, first["access_token"])

    assert [s["id"] for s in sessions] == [sid(second), sid(first)]
    newest, oldest = sessions
    assert set(newest) == {"id", "created_at", "last_used_at", "ip", "user_agent", "amr", "current"}
    assert (newest["ip"], newest["user_agent"], newest["current"]) == (
        "198.51.100.9",
        "curl/8.5.0",
        False,
    )
    assert (oldest["ip"], oldest["user_agent"], oldest["current"]) == (
        "203.0.113.7",
        "Firefox/140.0",
        True,
    )
    assert oldest["amr"] == ["pwd"]
    created = datetime.fromisoformat(oldest["created_at"])
    assert created.tzinfo is not None
    assert datetime.fromisoformat(oldest["last_used_at"]) == created
    assert datetime.fromisoformat(newest["created_at"]) > created
    # The other session's token sees the same list with its own session marked.
    assert [s["current"] for s in await listed(auth, second["access_token"])] == [True, False]


async def test_a_refresh_records_when_and_from_where_the_session_was_used(
    auth: AuthHarness, account: Account
) -> None:
    auth.clock.advance(-60)
    pair = await login_from(auth, account, "203.0.113.7", "Firefox/140.0")
    auth.clock.advance(60)
    response = await auth.client.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": pair["refresh_token"]},
        headers={"X-Forwarded-For": "192.0.2.44", "User-Agent": "Firefox/141.0"},
    )
    assert response.status_code == 200
    [session] = await listed(auth, response.json()["access_token"])
    assert session["id"] == sid(pair)
    assert (session["ip"], session["user_agent"]) == ("192.0.2.44", "Firefox/141.0")
    used = datetime.fromisoformat(session["last_used_at"])
    assert (used - datetime.fromisoformat(session["created_at"])).total_seconds() >= 60


async def test_the_user_agent_is_kept_on_one_line_and_bounded(
    auth: AuthHarness, account: Account
) -> None:
    pair = await login_from(auth, account, "203.0.113.7", "A" * 300 + "\tB")
    [session] = await listed(auth, pair["access_token"])
    assert session["user_agent"] == "A" * 256
    bare = await auth.client.post(
        "/api/v1/auth/login",
        data={"username": account.username, "password": account.password},
        headers={"User-Agent": " \t "},
    )
    sessions = await listed(auth, bare.json()["access_token"])
    assert sessions[0]["user_agent"] is None


async def test_ended_revoked_and_idle_sessions_are_not_listed(
    auth: AuthHarness, account: Account
) -> None:
    logged_out = await auth.login(account)
    assert (
        await auth.client.post("/api/v1/auth/logout", headers=bearer(logged_out["access_token"]))
    ).status_code == 204
    idle = auth.settings.refresh_idle_timeout
    auth.users.ignore_token_times = True  # auth's service tokens to users are signed a day ago
    auth.clock.advance(-idle - 30)
    await auth.login(account)  # its refresh token has idled out
    auth.clock.advance(60)
    quiet = await auth.login(account)  # unused for 30 s less than the idle timeout
    auth.clock.advance(idle - 30)
    fresh = await auth.login(account)
    assert [s["id"] for s in await listed(auth, fresh["access_token"])] == [sid(fresh), sid(quiet)]


async def test_ending_a_session_kills_its_tokens_and_spares_the_others(
    auth: AuthHarness, account: Account
) -> None:
    mine, lost = await auth.login(account), await auth.login(account)
    response = await auth.client.delete(
        f"{SESSIONS}/{sid(lost)}", headers=bearer(mine["access_token"])
    )
    assert response.status_code == 204
    assert response.content == b""
    # Its refresh token is dead, its access token is marked for the gateway and inactive.
    assert (await auth.refresh(lost["refresh_token"])).status_code == 401
    claims = claims_of(lost["access_token"])
    assert await is_revoked(auth.redis, claims["sid"], claims["sub"], claims["iat"])
    assert await introspect_as_gateway(auth, lost["access_token"]) == {"active": False}
    # The caller's session goes on.
    assert [s["id"] for s in await listed(auth, mine["access_token"])] == [sid(mine)]
    assert (await auth.refresh(mine["refresh_token"])).status_code == 200
    # Ending it again changes nothing.
    again = await auth.client.delete(
        f"{SESSIONS}/{sid(lost)}", headers=bearer(mine["access_token"])
    )
    assert again.status_code == 204


async def test_ending_the_current_session_is_a_logout(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    response = await auth.client.delete(
        f"{SESSIONS}/{sid(pair)}", headers=bearer(pair["access_token"])
    )
    assert response.status_code == 204
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401


@pytest.mark.parametrize("kind", ["someone else's", "unknown", "not a uuid", "uppercase"])
async def test_a_session_that_is_not_the_callers_is_404(
    auth: AuthHarness, account: Account, kind: str
) -> None:
    pair = await auth.login(account)
    victim = await auth.login(auth.users.add())
    target = {
        "someone else's": sid(victim),
        "unknown": str(uuid.uuid4()),
        "not a uuid": "not-a-session",
        "uppercase": sid(victim).upper(),
    }[kind]
    response = await auth.client.delete(
        f"{SESSIONS}/{target}", headers=bearer(pair["access_token"])
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert (await auth.refresh(victim["refresh_token"])).status_code == 200


async def test_ending_every_other_session_keeps_the_current_one(
    auth: AuthHarness, account: Account
) -> None:
    others = [await auth.login(account) for _ in range(3)]
    mine = await auth.login(account)
    stranger = await auth.login(auth.users.add())
    response = await auth.client.delete(SESSIONS, headers=bearer(mine["access_token"]))
    assert response.status_code == 204
    for pair in others:
        assert (await auth.refresh(pair["refresh_token"])).status_code == 401
        claims = claims_of(pair["access_token"])
        assert await is_revoked(auth.redis, claims["sid"], claims["sub"], claims["iat"])
    refreshed = await auth.refresh(mine["refresh_token"])
    assert refreshed.status_code == 200
    [session] = await listed(auth, refreshed.json()["access_token"])
    assert session["id"] == sid(mine)
    assert session["current"] is True
    assert (await auth.refresh(stranger["refresh_token"])).status_code == 200


async def test_an_admin_lists_and_ends_a_users_sessions(auth: AuthHarness) -> None:
    admin, user = auth.users.add(roles=("admin", "user")), auth.users.add()
    admin_pair = await auth.login(admin)
    first, second = await auth.login(user), await auth.login(user)
    token = admin_pair["access_token"]

    sessions = await listed(auth, token, user_id=user.user_id)
    assert [s["id"] for s in sessions] == [sid(second), sid(first)]
    assert not any(s["current"] for s in sessions)

    # An admin names the user: the session must be that user's.
    wrong_owner = await auth.client.delete(
        f"{SESSIONS}/{sid(first)}", headers=bearer(token), params={"user_id": admin.user_id}
    )
    assert wrong_owner.status_code == 404
    mine_only = await auth.client.delete(f"{SESSIONS}/{sid(first)}", headers=bearer(token))
    assert mine_only.status_code == 404
    ended = await auth.client.delete(
        f"{SESSIONS}/{sid(first)}", headers=bearer(token), params={"user_id": user.user_id}
    )
    assert ended.status_code == 204
    assert (await auth.refresh(first["refresh_token"])).status_code == 401
    assert [s["id"] for s in await listed(auth, token, user_id=user.user_id)] == [sid(second)]

    everything = await auth.client.delete(
        SESSIONS, headers=bearer(token), params={"user_id": user.user_id}
    )
    assert everything.status_code == 204
    assert (await auth.refresh(second["refresh_token"])).status_code == 401
    assert await listed(auth, token, user_id=user.user_id) == []
    # The admin's own session is not the user's: it goes on.
    assert (await auth.refresh(admin_pair["refresh_token"])).status_code == 200


async def test_a_non_admin_naming_a_user_is_403(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    victim = await auth.login(auth.users.add())
    victim_id = claims_of(victim["access_token"])["sub"]
    headers = bearer(pair["access_token"])
    for method, path in (
        ("GET", SESSIONS),
        ("DELETE", SESSIONS),
        ("DELETE", f"{SESSIONS}/{sid(victim)}"),
    ):
        response = await auth.client.request(
            method, path, headers=headers, params={"user_id": victim_id}
        )
        assert response.status_code == 403, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await auth.refresh(victim["refresh_token"])).status_code == 200


@pytest.mark.parametrize("value", ["", "nope", "1" * 300, str(uuid.uuid4())[:-1]])
async def test_a_malformed_user_id_is_422_naming_it(
    auth: AuthHarness, account: Account, value: str
) -> None:
    pair = await auth.login(account)
    for method, path in (("GET", SESSIONS), ("DELETE", SESSIONS)):
        response = await auth.client.request(
            method, path, headers=bearer(pair["access_token"]), params={"user_id": value}
        )
        assert response.status_code == 422, (method, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == ["user_id"]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic abc"}]
)
async def test_the_session_routes_need_a_user_token(
    auth: AuthHarness, account: Account, headers: dict[str, str]
) -> None:
    pair = await auth.login(account)
    for method, path in (
        ("GET", SESSIONS),
        ("DELETE", SESSIONS),
        ("DELETE", f"{SESSIONS}/{sid(pair)}"),
    ):
        response = await auth.client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await auth.refresh(pair["refresh_token"])).status_code == 200


async def test_methods_the_session_paths_do_not_serve_are_405(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    response = await auth.client.post(SESSIONS, headers=bearer(pair["access_token"]))
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}


async def test_ending_sessions_is_audited_without_tokens(
    auth: AuthHarness, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gatehouse.audit")
    pairs = [await auth.login(account) for _ in range(3)]
    headers = bearer(pairs[0]["access_token"])
    await auth.client.delete(f"{SESSIONS}/{sid(pairs[1])}", headers=headers)
    await auth.client.delete(SESSIONS, headers=headers)
    events = {r.getMessage(): r for r in caplog.records if r.name == "gatehouse.audit"}
    ended, others = events["session.ended"], events["sessions.ended_others"]
    assert ended.__dict__["session_id"] == sid(pairs[1])
    assert ended.__dict__["user_id"] == account.user_id
    assert ended.__dict__["actor_id"] == account.user_id
    assert others.__dict__["session_id"] == sid(pairs[0])  # the one kept
    assert others.__dict__["count"] == 1
    text = " ".join(str(r.__dict__) for r in caplog.records)
    for pair in pairs:
        assert pair["access_token"] not in text
        assert pair["refresh_token"] not in text
