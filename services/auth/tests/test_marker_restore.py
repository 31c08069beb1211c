"""The restore of the revocation markers, against the revocations running beside it."""

from __future__ import annotations

import asyncio

from auth.revocation.service import MarkerRestorer
from auth.sessions.service import SessionRevoker
from common.revocation import EPOCH_KEY, session_key
from prometheus_client import REGISTRY

from .support import AuthHarness, claims_of, wait_for_epoch
from .users_double import Account


def restores() -> float:
    value = REGISTRY.get_sample_value(
        "gatehouse_auth_revocation_restores_total", {"outcome": "restored"}
    )
    return value or 0.0


async def test_restore_waits_for_a_revocation_in_flight(
    auth: AuthHarness, account: Account
) -> None:
    """Redis is lost after a revocation wrote its marker but before it committed: the restore
    must not write the epoch without that session."""
    session_id = claims_of((await auth.login(account))["access_token"])["sid"]
    state = auth.state
    restorer = MarkerRestorer(state.db, state.redis, auth.settings, auth.clock)
    async with state.db.sessionmaker() as db, db.begin():
        revoker = SessionRevoker(db, state.redis, auth.settings, auth.clock)
        await revoker.revoke_sessions([session_id], "logout")
        await auth.redis.delete(session_key(session_id), EPOCH_KEY)  # Redis restarted empty
        restore = asyncio.create_task(restorer.ensure_markers())
        await asyncio.sleep(0.5)
        assert not await auth.redis.exists(EPOCH_KEY)
    await restore
    await wait_for_epoch(auth.redis)
    assert await auth.redis.exists(session_key(session_id))


async def test_restoring_twice_changes_nothing(auth: AuthHarness, account: Account) -> None:
    pair = await auth.login(account)
    response = await auth.client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert response.status_code == 204
    session_id = claims_of(pair["access_token"])["sid"]
    state = auth.state
    restorer = MarkerRestorer(state.db, state.redis, auth.settings, auth.clock)
    before = restores()
    for _ in range(2):
        await auth.redis.delete(EPOCH_KEY)
        await restorer.ensure_markers()
        await wait_for_epoch(auth.redis)
        assert await auth.redis.exists(session_key(session_id))
        assert await auth.redis.ttl(session_key(session_id)) > 0
    assert restores() == before + 2  # by this call or the background check
    metrics = (await auth.client.get("/metrics")).text
    assert "gatehouse_auth_revocation_restore_seconds_count" in metrics
