"""users ends a user's sessions on the request path of a password change or a deactivation
(`POST /internal/v1/users/{id}/sessions/end`, a `users` service token), before the event does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.revocation import is_revoked

from .support import INTERNAL_SECRET, AuthHarness, claims_of
from .users_double import Account


async def service_token(auth: AuthHarness, client_id: str = "users") -> str:
    response = await auth.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "audience": "auth"},
        auth=(client_id, INTERNAL_SECRET),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def end_url(account: Account) -> str:
    return f"/internal/v1/users/{account.user_id}/sessions/end"


async def test_ending_a_users_sessions_takes_effect_at_once_and_is_idempotent(
    auth: AuthHarness, account: Account
) -> None:
    phone = await auth.login(account)
    laptop = await auth.login(account)
    headers = {"Authorization": f"Bearer {await service_token(auth)}"}
    body = {"reason": "password_changed", "changed_at": datetime.now(UTC).isoformat()}
    ended = await auth.client.post(end_url(account), json=body, headers=headers)
    assert ended.status_code == 200, ended.text
    assert ended.json() == {"revoked": 2}
    for pair in (phone, laptop):
        claims = claims_of(pair["access_token"])
        assert await is_revoked(auth.redis, claims["sid"], account.user_id, claims["iat"])
        assert (await auth.refresh(pair["refresh_token"])).status_code == 401
    # The event (or a retry) repeats it: nothing more ends, a later session is spared.
    later = await auth.login(account)
    again = await auth.client.post(end_url(account), json=body, headers=headers)
    assert again.json() == {"revoked": 0}
    assert (await auth.refresh(later["refresh_token"])).status_code == 200


async def test_a_change_time_in_the_future_counts_as_now(
    auth: AuthHarness, account: Account
) -> None:
    headers = {"Authorization": f"Bearer {await service_token(auth)}"}
    future = datetime.now(UTC) + timedelta(hours=1)
    body = {"reason": "deactivated", "changed_at": future.isoformat()}
    assert (await auth.client.post(end_url(account), json=body, headers=headers)).status_code == 200
    later = await auth.login(account)
    assert (await auth.refresh(later["refresh_token"])).status_code == 200


async def test_only_a_service_token_with_the_scope_may_end_sessions(
    auth: AuthHarness, account: Account
) -> None:
    pair = await auth.login(account)
    body = {"reason": "deactivated", "changed_at": datetime.now(UTC).isoformat()}
    gateway = {"Authorization": f"Bearer {await service_token(auth, 'gateway')}"}
    user = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await auth.client.post(end_url(account), json=body)).status_code == 401
    assert (await auth.client.post(end_url(account), json=body, headers=user)).status_code == 401
    refused = await auth.client.post(end_url(account), json=body, headers=gateway)
    assert refused.status_code == 403
    headers = {"Authorization": f"Bearer {await service_token(auth)}"}
    bad = await auth.client.post(end_url(account), json={**body, "reason": "x"}, headers=headers)
    assert bad.status_code == 422
    assert (await auth.refresh(pair["refresh_token"])).status_code == 200
