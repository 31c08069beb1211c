"""Account events end sessions: the handler directly, and through the in-process broker."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from auth.events.handler import AUDITED_ONLY, ENDING_SESSIONS
from common.broker import ACCOUNT_SESSIONS, CONSUMER_QUEUES, PermanentFailure
from common.events import Envelope
from common.inprocess_broker import InProcessBroker
from common.revocation import is_revoked
from common.state import runtime_of

from .support import AuthHarness, claims_of, handle, introspect_as_gateway, running_auth
from .users_double import Account


@pytest.mark.parametrize("event_type", ["user.password_changed", "user.deactivated"])
async def test_event_ends_every_session_of_the_user(
    auth: AuthHarness, account: Account, event_type: str
) -> None:
    first, second = await auth.login(account), await auth.login(account)
    other = await auth.login(auth.users.add())
    await handle(auth, Envelope(type=event_type, data={"user_id": account.user_id}))
    for pair in (first, second):
        assert (await auth.refresh(pair["refresh_token"])).status_code == 401
        claims = claims_of(pair["access_token"])
        assert await is_revoked(auth.redis, claims["sid"], claims["sub"], claims["iat"])
        assert await introspect_as_gateway(auth, pair["access_token"]) == {"active": False}
    assert (await auth.refresh(other["refresh_token"])).status_code == 200


async def test_redelivered_event_spares_sessions_opened_after_the_change(
    auth: AuthHarness, account: Account
) -> None:
    envelope = Envelope(
        type="user.password_changed",
        data={"user_id": account.user_id},
        occurred_at=auth.clock() - timedelta(seconds=5),
    )
    await handle(auth, envelope)
    pair = await auth.login(account)
    await handle(auth, envelope)  # at-least-once delivery: the same event again
    assert (await auth.refresh(pair["refresh_token"])).status_code == 200
    claims = claims_of(pair["access_token"])
    assert not await is_revoked(auth.redis, claims["sid"], claims["sub"], claims["iat"])


def test_the_topology_binds_exactly_the_events_auth_handles() -> None:
    handled = set(ENDING_SESSIONS) | AUDITED_ONLY
    assert set(ACCOUNT_SESSIONS.routing_keys) == handled
    assert set(CONSUMER_QUEUES[ACCOUNT_SESSIONS.queue]) == handled
    assert set(InProcessBroker().bindings(ACCOUNT_SESSIONS.queue)) == handled


async def test_auth_consumes_exactly_its_subscription(database_url: str) -> None:
    broker = InProcessBroker(queues={})
    async with running_auth(database_url, broker=broker.client()):
        assert broker.bindings(ACCOUNT_SESSIONS.queue) == set(ENDING_SESSIONS) | AUDITED_ONLY


async def test_profile_update_keeps_sessions(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    await handle(auth, Envelope(type="user.updated", data={"user_id": account.user_id}))
    assert (await auth.refresh(pair["refresh_token"])).status_code == 200


async def test_roles_changed_keeps_sessions(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    account.roles = ["admin"]
    await handle(
        auth,
        Envelope(type="user.roles_changed", data={"user_id": account.user_id, "roles": ["admin"]}),
    )
    refreshed = await auth.refresh(pair["refresh_token"])
    assert refreshed.status_code == 200
    assert claims_of(refreshed.json()["access_token"])["roles"] == ["admin"]


@pytest.mark.parametrize("data", [{}, {"user_id": 5}, {"user_id": ""}, {"user_id": "x" * 65}])
async def test_event_without_user_id_is_a_permanent_failure(
    auth: AuthHarness, data: dict[str, object]
) -> None:
    with pytest.raises(PermanentFailure):
        await handle(auth, Envelope(type="user.deactivated", data=data))


async def test_events_arrive_through_the_broker(database_url: str) -> None:
    broker = InProcessBroker()
    async with running_auth(database_url, broker=broker.client()) as auth:
        account = auth.users.add()
        pair = await auth.login(account)
        await broker.client().publish(
            Envelope(type="user.deactivated", data={"user_id": account.user_id})
        )
        for _ in range(250):
            if (await introspect_as_gateway(auth, pair["refresh_token"]))["active"] is False:
                break
            await asyncio.sleep(0.02)
        assert (await auth.refresh(pair["refresh_token"])).status_code == 401
        assert broker.dead_letters(ACCOUNT_SESSIONS.queue) == []
        assert "broker" in runtime_of(auth.app).degradable_checks


async def test_audit_log_records_security_events(
    auth: AuthHarness, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gatehouse.audit")
    pair = await auth.login(account)
    await auth.refresh(pair["refresh_token"])
    await auth.refresh(pair["refresh_token"])  # reuse
    await auth.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": "wrong"}
    )
    events = [r for r in caplog.records if r.name == "gatehouse.audit"]
    names = [r.getMessage() for r in events]
    for expected in (
        "login.succeeded",
        "refresh.reuse_detected",
        "session.revoked",
        "login.failed",
    ):
        assert expected in names
    reuse = next(r for r in events if r.getMessage() == "refresh.reuse_detected")
    assert reuse.__dict__["user_id"] == account.user_id
    assert reuse.__dict__["session_id"] == claims_of(pair["access_token"])["sid"]
    assert reuse.__dict__["client_ip"]
    text = " ".join(str(r.__dict__) for r in events)
    assert pair["refresh_token"] not in text
    assert account.password not in text
    assert "wrong" not in text.replace("wrong_", "")


async def test_login_right_after_a_password_change_is_never_refused(
    auth: AuthHarness, account: Account
) -> None:
    """The change and the next login in the same wall-clock second: the new token must live."""
    for _ in range(10):
        # Early in a second, so the change and the login surely share it.
        now = auth.clock()
        auth.clock.advance(1.05 - now.microsecond / 1e6)
        old = await auth.login(account)
        await handle(
            auth,
            Envelope(
                type="user.password_changed",
                data={"user_id": account.user_id},
                occurred_at=auth.clock(),
            ),
        )
        pair = await auth.login(account)
        claims = claims_of(pair["access_token"])
        assert not await is_revoked(auth.redis, claims["sid"], claims["sub"], claims["iat"])
        assert (await introspect_as_gateway(auth, pair["access_token"]))["active"] is True
        old_claims = claims_of(old["access_token"])
        assert old_claims["iat"] == claims["iat"]  # the same second
        assert await is_revoked(auth.redis, old_claims["sid"], old_claims["sub"], old_claims["iat"])
