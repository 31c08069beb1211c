"""TOTP with recovery codes and the two-step login (API.md §9), on real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from xml.etree import ElementTree

import pytest
from auth.mfa.models import MfaTicket, RecoveryCode, TotpCredential
from auth.models import OutboxEvent
from common.security import SECOND_FACTORS
from sqlalchemy import select

from .support import (
    LOGIN_MFA_URL,
    AuthHarness,
    bearer,
    claims_of,
    enrol,
    password_step,
    running_auth,
    totp_code,
)
from .users_double import Account

MFA_URL = "/api/v1/auth/mfa"
TOTP_URL = "/api/v1/auth/mfa/totp"
CONFIRM_URL = "/api/v1/auth/mfa/totp/confirm"
RECOVERY_URL = "/api/v1/auth/mfa/recovery-codes"


async def second_step(auth: AuthHarness, mfa_token: str, code: str) -> Any:
    return await auth.client.post(LOGIN_MFA_URL, json={"mfa_token": mfa_token, "code": code})


async def status_of(auth: AuthHarness, access_token: str) -> dict[str, Any]:
    response = await auth.client.get(MFA_URL, headers=bearer(access_token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def outbox_types(auth: AuthHarness, user_id: str) -> list[str]:
    async with auth.state.db.sessionmaker() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))).all()
    return [row.event_type for row in rows if row.payload["data"]["user_id"] == user_id]


async def test_enrolment_changes_nothing_until_confirmed(
    auth: AuthHarness, account: Account
) -> None:
    access = (await auth.login(account))["access_token"]
    assert await status_of(auth, access) == {"totp": False, "recovery_codes_left": 0}
    started = await auth.client.post(TOTP_URL, headers=bearer(access))
    assert started.status_code == 200
    assert started.headers["cache-control"] == "no-store"
    body = started.json()
    uri = urlparse(body["otpauth_uri"])
    query = parse_qs(uri.query)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["Gatehouse"]
    assert account.username in uri.path
    assert len(body["secret"]) == 32  # 160 bits of base32
    prefix = "data:image/svg+xml;charset=utf-8,"
    assert body["qr_svg"].startswith(prefix)
    svg = ElementTree.fromstring(unquote(body["qr_svg"].removeprefix(prefix)))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert body["secret"] not in body["qr_svg"]
    # Not on yet: the password alone still logs in, and the status says off.
    assert await status_of(auth, access) == {"totp": False, "recovery_codes_left": 0}
    await auth.login(account)


async def test_restarting_replaces_the_pending_secret(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    first = (await auth.client.post(TOTP_URL, headers=bearer(access))).json()["secret"]
    second = (await auth.client.post(TOTP_URL, headers=bearer(access))).json()["secret"]
    assert first != second
    stale = await auth.client.post(
        CONFIRM_URL, json={"code": totp_code(first, auth.clock())}, headers=bearer(access)
    )
    assert stale.status_code == 422
    fresh = await auth.client.post(
        CONFIRM_URL, json={"code": totp_code(second, auth.clock())}, headers=bearer(access)
    )
    assert fresh.status_code == 200


async def test_confirm_wrong_then_right_code(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    secret = (await auth.client.post(TOTP_URL, headers=bearer(access))).json()["secret"]
    wrong = totp_code(secret, auth.clock(), steps_ahead=5)
    refused = await auth.client.post(CONFIRM_URL, json={"code": wrong}, headers=bearer(access))
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "code"
    assert await status_of(auth, access) == {"totp": False, "recovery_codes_left": 0}
    right = totp_code(secret, auth.clock())
    confirmed = await auth.client.post(CONFIRM_URL, json={"code": right}, headers=bearer(access))
    assert confirmed.status_code == 200
    assert confirmed.headers["cache-control"] == "no-store"
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert await status_of(auth, access) == {"totp": True, "recovery_codes_left": 10}
    assert await outbox_types(auth, account.user_id) == ["user.mfa_enabled"]


async def test_confirm_without_an_enrolment_is_a_conflict(
    auth: AuthHarness, account: Account
) -> None:
    access = (await auth.login(account))["access_token"]
    response = await auth.client.post(CONFIRM_URL, json={"code": "123456"}, headers=bearer(access))
    assert response.status_code == 409


async def test_secrets_are_stored_sealed_and_codes_hashed(
    auth: AuthHarness, account: Account
) -> None:
    access = (await auth.login(account))["access_token"]
    enrolled = await enrol(auth, access)
    async with auth.state.db.sessionmaker() as session:
        credential = await session.get(TotpCredential, account.user_id)
        assert credential is not None
        assert credential.secret is not None
        assert enrolled.secret.encode() not in credential.secret
        stored = (
            await session.scalars(
                select(RecoveryCode.code_hash).where(RecoveryCode.user_id == account.user_id)
            )
        ).all()
    assert len(stored) == 10
    for code in enrolled.recovery_codes:
        assert code.replace("-", "") not in stored
        assert code not in stored


async def test_two_step_login_gives_otp_amr_and_fresh_auth_time(
    auth: AuthHarness, account: Account
) -> None:
    access = (await auth.login(account))["access_token"]
    enrolled = await enrol(auth, access)
    auth.users.ignore_token_times = True
    auth.clock.advance(60)
    response = await auth.client.post(
        "/api/v1/auth/login",
        data={"username": account.username, "password": account.password},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/mfa-required")
    assert problem["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in problem
    assert "refresh_token" not in problem
    mfa_token = problem["mfa_token"]
    assert mfa_token.startswith(account.user_id + ".")
    auth.clock.advance(30)
    done = await second_step(auth, mfa_token, totp_code(enrolled.secret, auth.clock()))
    assert done.status_code == 200, done.text
    assert done.headers["cache-control"] == "no-store"
    pair = done.json()
    claims = claims_of(pair["access_token"])
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["auth_time"] >= claims_of(access)["auth_time"] + 90
    assert claims["sub"] == account.user_id
    # The refresh keeps the second factor's amr.
    refreshed = await auth.refresh(pair["refresh_token"])
    assert claims_of(refreshed.json()["access_token"])["amr"] == ["pwd", "otp"]
    # A ticket works once.
    again = await second_step(auth, mfa_token, totp_code(enrolled.secret, auth.clock(), 1))
    assert again.status_code == 401


async def test_a_wrong_password_of_an_mfa_account_is_a_plain_401(
    auth: AuthHarness, account: Account
) -> None:
    await enrol(auth, (await auth.login(account))["access_token"])
    response = await auth.client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": "wrong password"}
    )
    assert response.status_code == 401
    assert "mfa_token" not in response.json()


async def test_a_totp_code_is_accepted_once(auth: AuthHarness, account: Account) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    # The confirming code's step is spent: it cannot log in.
    confirm_code = totp_code(enrolled.secret, auth.clock())
    refused = await second_step(auth, await password_step(auth.client, account), confirm_code)
    assert refused.status_code == 401
    code = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
    first = await second_step(auth, await password_step(auth.client, account), code)
    assert first.status_code == 200
    replayed = await second_step(auth, await password_step(auth.client, account), code)
    assert replayed.status_code == 401
    # An earlier step's code, still within the window, is refused too.
    earlier = totp_code(enrolled.secret, auth.clock())
    assert (
        await second_step(auth, await password_step(auth.client, account), earlier)
    ).status_code == 401


async def test_a_recovery_code_works_once(
    auth: AuthHarness, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    access = (await auth.login(account))["access_token"]
    enrolled = await enrol(auth, access)
    code = enrolled.recovery_codes[3]
    with caplog.at_level(logging.INFO, logger="gatehouse.audit"):
        first = await second_step(auth, await password_step(auth.client, account), code.upper())
    assert first.status_code == 200, first.text
    assert claims_of(first.json()["access_token"])["amr"] == ["pwd", "otp"]
    used = [r for r in caplog.records if r.getMessage() == "mfa.recovery_code_used"]
    assert len(used) == 1
    assert code not in caplog.text
    assert code.replace("-", "") not in caplog.text.lower()
    again = await second_step(auth, await password_step(auth.client, account), code)
    assert again.status_code == 401
    assert (await status_of(auth, access))["recovery_codes_left"] == 9
    assert await outbox_types(auth, account.user_id) == [
        "user.mfa_enabled",
        "user.mfa_recovery_code_used",
    ]


async def test_five_wrong_codes_void_the_ticket(
    auth: AuthHarness, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    right = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
    wrong = "000000" if right != "000000" else "111111"
    with caplog.at_level(logging.INFO, logger="gatehouse.audit"):
        for _ in range(4):
            assert (await second_step(auth, mfa_token, wrong)).status_code == 401
        assert (await second_step(auth, mfa_token, "zzzz-zzzz-zzzz")).status_code == 401
    failed = [r for r in caplog.records if r.getMessage() == "mfa.failed"]
    assert len(failed) == 5
    assert mfa_token not in caplog.text
    voided = await second_step(auth, mfa_token, right)
    assert voided.status_code == 401
    # The right code was not spent on the void ticket: a new ticket takes it.
    fresh = await second_step(auth, await password_step(auth.client, account), right)
    assert fresh.status_code == 200


async def test_four_wrong_codes_leave_the_ticket_usable(
    auth: AuthHarness, account: Account
) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    for _ in range(4):
        assert (await second_step(auth, mfa_token, "zzzz-zzzz-zzzz")).status_code == 401
    right = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
    assert (await second_step(auth, mfa_token, right)).status_code == 200


async def test_concurrent_wrong_codes_check_at_most_five(
    auth: AuthHarness, account: Account
) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    answers = await asyncio.gather(
        *(second_step(auth, mfa_token, "zzzz-zzzz-zzzz") for _ in range(12))
    )
    assert {a.status_code for a in answers} == {401}
    async with auth.state.db.sessionmaker() as session:
        attempts = await session.scalar(
            select(MfaTicket.attempts).where(MfaTicket.user_id == account.user_id)
        )
    assert attempts == 5
    right = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
    assert (await second_step(auth, mfa_token, right)).status_code == 401


async def test_the_mfa_token_expires_after_five_minutes(
    auth: AuthHarness, account: Account
) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    auth.users.ignore_token_times = True
    auth.clock.advance(5 * 60 + 1)
    late = await second_step(auth, mfa_token, totp_code(enrolled.secret, auth.clock()))
    assert late.status_code == 401


async def test_the_mfa_token_is_no_bearer_token(auth: AuthHarness, account: Account) -> None:
    await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    for method, url in (("GET", MFA_URL), ("POST", "/api/v1/auth/logout"), ("POST", TOTP_URL)):
        response = await auth.client.request(method, url, headers=bearer(mfa_token))
        assert response.status_code == 401, (url, response.text)
        assert "invalid_token" in response.headers["www-authenticate"]
    refresh = await auth.refresh(mfa_token)
    assert refresh.status_code == 401


async def test_a_forged_user_prefix_is_an_unknown_ticket(
    auth: AuthHarness, account: Account
) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    other = auth.users.add()
    forged = other.user_id + "." + mfa_token.partition(".")[2]
    code = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
    assert (await second_step(auth, forged, code)).status_code == 401
    assert (await second_step(auth, mfa_token, code)).status_code == 200


async def test_a_deactivated_account_cannot_finish_its_login(
    auth: AuthHarness, account: Account
) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    account.is_active = False
    code = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
    assert (await second_step(auth, mfa_token, code)).status_code == 401


async def test_admin_permissions_count_with_the_otp_amr(
    database_url: str,
) -> None:
    async with running_auth(database_url, admin_requires_mfa=True) as auth:
        admin = auth.users.add(roles=("user", "admin"))
        access = (await auth.login(admin))["access_token"]
        enrolled = await enrol(auth, access)
        code = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
        pair = (await second_step(auth, await password_step(auth.client, admin), code)).json()
        claims = claims_of(pair["access_token"])
        assert "users:manage" in claims["scope"].split()
        assert not SECOND_FACTORS.isdisjoint(claims["amr"])


async def test_mfa_changes_need_a_recent_login(auth: AuthHarness, account: Account) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    auth.clock.advance(-400)  # a login 400 s ago (STEP_UP_MAX_AGE is 300)
    try:
        mfa_token = await password_step(auth.client, account)
        code = enrolled.recovery_codes[0]
        stale = (await second_step(auth, mfa_token, code)).json()["access_token"]
    finally:
        auth.clock.advance(400)
    for method, url in (("POST", TOTP_URL), ("DELETE", TOTP_URL), ("POST", RECOVERY_URL)):
        response = await auth.client.request(method, url, headers=bearer(stale))
        assert response.status_code == 401, (url, response.text)
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_user_authentication"' in challenge
        assert "max_age=300" in challenge
    assert (await status_of(auth, stale)) == {"totp": True, "recovery_codes_left": 9}


async def test_disable_turns_mfa_off_and_voids_the_codes(
    auth: AuthHarness, account: Account
) -> None:
    access = (await auth.login(account))["access_token"]
    enrolled = await enrol(auth, access)
    response = await auth.client.delete(TOTP_URL, headers=bearer(access))
    assert response.status_code == 204
    assert await status_of(auth, access) == {"totp": False, "recovery_codes_left": 0}
    await auth.login(account)  # the password alone again
    assert await outbox_types(auth, account.user_id) == ["user.mfa_enabled", "user.mfa_disabled"]
    # Enrol again: the old recovery codes stay void.
    again = await enrol(auth, access)
    mfa_token = await password_step(auth.client, account)
    assert (await second_step(auth, mfa_token, enrolled.recovery_codes[0])).status_code == 401
    assert (await second_step(auth, mfa_token, again.recovery_codes[0])).status_code == 200


async def test_regenerated_codes_void_the_old_set(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    enrolled = await enrol(auth, access)
    response = await auth.client.post(RECOVERY_URL, headers=bearer(access))
    assert response.status_code == 200
    fresh = response.json()["recovery_codes"]
    assert len(fresh) == 10
    assert not set(fresh) & set(enrolled.recovery_codes)
    mfa_token = await password_step(auth.client, account)
    assert (await second_step(auth, mfa_token, enrolled.recovery_codes[0])).status_code == 401
    assert (await second_step(auth, mfa_token, fresh[0])).status_code == 200


async def test_regenerating_without_mfa_is_a_conflict(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    assert (await auth.client.post(RECOVERY_URL, headers=bearer(access))).status_code == 409


async def test_two_replicas_accept_one_code_once(database_url: str, auth: AuthHarness) -> None:
    """Two auth apps over one database, the same code sent to both at once for two tickets of
    the account: exactly one login wins, whichever replica it reached."""
    account = auth.users.add()
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    async with running_auth(database_url) as other:
        other.users.accounts = auth.users.accounts
        for round_ in range(1, 4):
            code = totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
            tickets = [
                await password_step(auth.client, account),
                await password_step(other.client, account),
            ]
            answers = await asyncio.gather(
                second_step(auth, tickets[0], code), second_step(other, tickets[1], code)
            )
            assert sorted(a.status_code for a in answers) == [200, 401], round_
            auth.users.ignore_token_times = other.users.ignore_token_times = True
            auth.clock.advance(30)
            other.clock.advance(30)
        recovery = enrolled.recovery_codes[0]
        tickets = [
            await password_step(auth.client, account),
            await password_step(other.client, account),
        ]
        answers = await asyncio.gather(
            second_step(auth, tickets[0], recovery), second_step(other, tickets[1], recovery)
        )
        assert sorted(a.status_code for a in answers) == [200, 401]


async def test_one_ticket_sent_twice_at_once_logs_in_once(
    auth: AuthHarness, account: Account
) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    mfa_token = await password_step(auth.client, account)
    answers = await asyncio.gather(
        second_step(auth, mfa_token, enrolled.recovery_codes[0]),
        second_step(auth, mfa_token, enrolled.recovery_codes[1]),
    )
    assert sorted(a.status_code for a in answers) == [200, 401]


async def test_a_secret_that_does_not_open_is_a_503_and_recovery_codes_still_work(
    auth: AuthHarness, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    enrolled = await enrol(auth, (await auth.login(account))["access_token"])
    async with auth.state.db.sessionmaker() as db, db.begin():
        credential = await db.get(TotpCredential, account.user_id)
        assert credential is not None
        assert credential.secret is not None
        tampered = bytearray(credential.secret)
        tampered[-1] ^= 1
        credential.secret = bytes(tampered)
    mfa_token = await password_step(auth.client, account)
    with caplog.at_level(logging.ERROR, logger="gatehouse.auth.mfa"):
        response = await second_step(
            auth, mfa_token, totp_code(enrolled.secret, auth.clock(), steps_ahead=1)
        )
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "does not open" in caplog.text
    assert enrolled.secret not in caplog.text
    # The attempt was not spent (rolled back), and a recovery code needs no secret.
    recovered = await second_step(auth, mfa_token, enrolled.recovery_codes[0])
    assert recovered.status_code == 200, recovered.text
