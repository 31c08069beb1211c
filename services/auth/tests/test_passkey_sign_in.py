"""Signing in with a passkey (API.md §13), the service the hosted sign-in page calls
(`Passkeys.authentication_options`, `Passkeys.verify_assertion`): as a second factor and
without a password, each challenge once, the sign count moving on, `hwk` or `swk`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from auth.passkeys.exceptions import PasskeyRefused
from auth.passkeys.service import Passkeys, PasskeySignIn
from common.testing import ISSUER

from .passkey_authenticator import SoftAuthenticator
from .support import AuthHarness, bearer, register_passkey
from .users_double import Account

BASE = "/api/v1/auth/mfa/webauthn"


@asynccontextmanager
async def passkeys(auth: AuthHarness) -> AsyncIterator[Passkeys]:
    """The service in a transaction of its own, committed as a request's would be."""
    state = auth.state
    async with state.db.sessionmaker() as db, db.begin():
        yield Passkeys(db=db, users=state.users, settings=auth.settings, clock=auth.clock)


async def registered(auth: AuthHarness, account: Account, *, backed_up: bool = False) -> Any:
    return await register_passkey(auth, account, ISSUER, backed_up=backed_up)


async def sign_in(
    auth: AuthHarness, credential: dict[str, Any], user_id: str | None
) -> PasskeySignIn:
    async with passkeys(auth) as service:
        return await service.verify_assertion(credential, user_id)


async def options(auth: AuthHarness, user_id: str | None) -> dict[str, Any]:
    async with passkeys(auth) as service:
        return (await service.authentication_options(user_id)).model_dump()


async def test_a_passkey_as_the_second_factor(auth: AuthHarness, account: Account) -> None:
    authenticator = await registered(auth, account)
    request = await options(auth, account.user_id)
    allowed = request["publicKey"]["allowCredentials"]
    assert [entry["type"] for entry in allowed] == ["public-key"]
    signed = await sign_in(
        auth, authenticator.get(request, ISSUER, account.user_id), account.user_id
    )
    assert (signed.user_id, signed.amr) == (account.user_id, ("hwk",))
    access = (await auth.login(account))["access_token"]
    [listed] = (await auth.client.get(BASE, headers=bearer(access))).json()
    assert listed["last_used_at"] is not None


async def test_a_synced_passkey_proves_swk(auth: AuthHarness, account: Account) -> None:
    authenticator = await registered(auth, account, backed_up=True)
    request = await options(auth, account.user_id)
    signed = await sign_in(
        auth, authenticator.get(request, ISSUER, account.user_id), account.user_id
    )
    assert signed.amr == ("swk",)


async def test_a_sign_in_without_a_password(auth: AuthHarness, account: Account) -> None:
    authenticator = await registered(auth, account)
    request = await options(auth, None)
    assert request["publicKey"]["allowCredentials"] == []
    signed = await sign_in(auth, authenticator.get(request, ISSUER, account.user_id), None)
    assert signed.user_id == account.user_id


async def test_each_challenge_signs_in_once(auth: AuthHarness, account: Account) -> None:
    authenticator = await registered(auth, account)
    request = await options(auth, account.user_id)
    await sign_in(auth, authenticator.get(request, ISSUER, account.user_id), account.user_id)
    with pytest.raises(PasskeyRefused):
        await sign_in(auth, authenticator.get(request, ISSUER, account.user_id), account.user_id)


async def test_a_challenge_raced_twice_signs_in_once(auth: AuthHarness, account: Account) -> None:
    authenticator = await registered(auth, account)
    request = await options(auth, account.user_id)
    first = authenticator.get(request, ISSUER, account.user_id)
    second = authenticator.get(request, ISSUER, account.user_id)
    results = await asyncio.gather(
        sign_in(auth, first, account.user_id),
        sign_in(auth, second, account.user_id),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["PasskeyRefused", "PasskeySignIn"]


async def test_a_replayed_sign_count_is_refused(auth: AuthHarness, account: Account) -> None:
    authenticator = await registered(auth, account)
    request = await options(auth, account.user_id)
    await sign_in(
        auth, authenticator.get(request, ISSUER, account.user_id, sign_count=5), account.user_id
    )
    request = await options(auth, account.user_id)
    with pytest.raises(PasskeyRefused):  # a cloned authenticator's count goes back
        await sign_in(
            auth, authenticator.get(request, ISSUER, account.user_id, sign_count=3), account.user_id
        )


async def test_a_registration_challenge_cannot_sign_in(auth: AuthHarness, account: Account) -> None:
    authenticator = await registered(auth, account)
    access = (await auth.login(account))["access_token"]
    registration = await auth.client.post(f"{BASE}/register/options", headers=bearer(access))
    with pytest.raises(PasskeyRefused):
        await sign_in(
            auth, authenticator.get(registration.json(), ISSUER, account.user_id), account.user_id
        )


async def test_someone_elses_passkey_is_refused(auth: AuthHarness, account: Account) -> None:
    other = auth.users.add()
    authenticator = await registered(auth, other)
    request = await options(auth, account.user_id)
    with pytest.raises(PasskeyRefused):
        await sign_in(auth, authenticator.get(request, ISSUER, other.user_id), account.user_id)
    # Without a password, the user handle must name the passkey's own account.
    request = await options(auth, None)
    with pytest.raises(PasskeyRefused):
        await sign_in(auth, authenticator.get(request, ISSUER, account.user_id), None)


@pytest.mark.parametrize(
    ("origin", "rp_id"), [("https://evil.example", "gatehouse.test"), (ISSUER, "evil.example")]
)
async def test_another_site_is_refused(
    auth: AuthHarness, account: Account, origin: str, rp_id: str
) -> None:
    authenticator = await registered(auth, account)
    request = await options(auth, account.user_id)
    with pytest.raises(PasskeyRefused):
        await sign_in(
            auth, authenticator.get(request, origin, account.user_id, rp_id=rp_id), account.user_id
        )


async def test_a_forged_signature_is_refused(auth: AuthHarness, account: Account) -> None:
    authenticator = await registered(auth, account)
    request = await options(auth, account.user_id)
    credential = authenticator.get(request, ISSUER, account.user_id)
    impostor = SoftAuthenticator()
    impostor.credential_id = authenticator.credential_id  # the id is public; the key is not
    forged = impostor.get(request, ISSUER, account.user_id)
    assert forged["rawId"] == credential["rawId"]
    with pytest.raises(PasskeyRefused):
        await sign_in(auth, forged, account.user_id)


@pytest.mark.parametrize(
    "credential",
    [
        {},
        {"response": {}},
        {"rawId": "%%", "response": {"clientDataJSON": "e30"}},
        {"response": []},
    ],
)
async def test_malformed_assertions_are_refused(
    auth: AuthHarness, account: Account, credential: dict[str, Any]
) -> None:
    await options(auth, account.user_id)
    with pytest.raises(PasskeyRefused):
        await sign_in(auth, credential, account.user_id)


async def test_a_sign_in_challenge_cannot_register(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    request = await options(auth, account.user_id)
    credential = SoftAuthenticator().create(request, ISSUER, rp_id="gatehouse.test")
    refused = await auth.client.post(
        f"{BASE}/register", json={"credential": credential}, headers=bearer(access)
    )
    assert refused.status_code == 422, refused.text
