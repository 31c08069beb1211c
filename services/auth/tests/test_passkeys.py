"""Passkeys (API.md §13): registration options and verification with the `webauthn` library
against a software authenticator, the list, removal; every refusal a 4xx problem."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from common.testing import ISSUER

from .passkey_authenticator import SoftAuthenticator, b64url
from .support import AuthHarness, bearer
from .users_double import Account

BASE = "/api/v1/auth/mfa/webauthn"


async def options_for(auth: AuthHarness, access: str) -> dict[str, Any]:
    response = await auth.client.post(f"{BASE}/register/options", headers=bearer(access))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    options: dict[str, Any] = response.json()
    return options


async def register(
    auth: AuthHarness, access: str, credential: dict[str, Any], name: str = "Laptop"
) -> Any:
    return await auth.client.post(
        f"{BASE}/register", json={"credential": credential, "name": name}, headers=bearer(access)
    )


async def test_register_list_and_remove_a_passkey(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    options = await options_for(auth, access)
    public_key = options["publicKey"]
    assert public_key["rp"] == {"id": "gatehouse.test", "name": "Gatehouse"}
    assert public_key["user"]["name"] == account.username
    assert base64.urlsafe_b64decode(public_key["user"]["id"] + "==").decode() == account.user_id
    assert public_key["excludeCredentials"] == []
    authenticator = SoftAuthenticator()
    created = await register(auth, access, authenticator.create(options, ISSUER))
    assert created.status_code == 201, created.text
    passkey = created.json()
    assert passkey["name"] == "Laptop"
    listed = await auth.client.get(BASE, headers=bearer(access))
    assert [p["id"] for p in listed.json()] == [passkey["id"]]
    # Registered passkeys are excluded from the next options.
    again = await options_for(auth, access)
    assert again["publicKey"]["excludeCredentials"][0]["id"] == b64url(authenticator.credential_id)
    removed = await auth.client.delete(f"{BASE}/{passkey['id']}", headers=bearer(access))
    assert removed.status_code == 204
    assert (await auth.client.get(BASE, headers=bearer(access))).json() == []
    gone = await auth.client.delete(f"{BASE}/{passkey['id']}", headers=bearer(access))
    assert gone.status_code == 404


async def test_a_challenge_works_once(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    options = await options_for(auth, access)
    first = await register(auth, access, SoftAuthenticator().create(options, ISSUER))
    assert first.status_code == 201
    second = await register(auth, access, SoftAuthenticator().create(options, ISSUER))
    assert second.status_code == 422
    assert second.json()["errors"][0]["field"] == "credential"


async def test_a_challenge_raced_twice_registers_once(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    options = await options_for(auth, access)
    answers = await asyncio.gather(
        register(auth, access, SoftAuthenticator().create(options, ISSUER)),
        register(auth, access, SoftAuthenticator().create(options, ISSUER)),
    )
    assert sorted(a.status_code for a in answers) == [201, 422]


async def test_a_challenge_expires(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    options = await options_for(auth, access)
    auth.users.ignore_token_times = True
    auth.clock.advance(5 * 60 + 1)
    late = await register(auth, access, SoftAuthenticator().create(options, ISSUER))
    assert late.status_code == 422


async def test_another_users_challenge_is_refused(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    options = await options_for(auth, access)
    other = (await auth.login(auth.users.add()))["access_token"]
    stolen = await register(auth, other, SoftAuthenticator().create(options, ISSUER))
    assert stolen.status_code == 422
    assert (
        await register(auth, access, SoftAuthenticator().create(options, ISSUER))
    ).status_code == 201


@pytest.mark.parametrize(
    ("origin", "rp_id", "ceremony"),
    [
        ("https://evil.example", None, "webauthn.create"),
        (ISSUER, "evil.example", "webauthn.create"),
        (ISSUER, None, "webauthn.get"),
    ],
)
async def test_a_credential_for_another_site_or_ceremony_is_refused(
    auth: AuthHarness, account: Account, origin: str, rp_id: str | None, ceremony: str
) -> None:
    access = (await auth.login(account))["access_token"]
    options = await options_for(auth, access)
    credential = SoftAuthenticator().create(options, origin, rp_id=rp_id, ceremony=ceremony)
    refused = await register(auth, access, credential)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await auth.client.get(BASE, headers=bearer(access))).json() == []


async def test_the_same_passkey_twice_is_a_conflict(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    authenticator = SoftAuthenticator()
    first = await register(
        auth, access, authenticator.create(await options_for(auth, access), ISSUER)
    )
    assert first.status_code == 201
    second = await register(
        auth, access, authenticator.create(await options_for(auth, access), ISSUER)
    )
    assert second.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"credential": "text"},
        {"credential": {}},
        {"credential": {"response": {"clientDataJSON": "%%%"}}},
        {"credential": {"response": {"clientDataJSON": b64url(b"not json")}}},
        {"credential": {"response": {"clientDataJSON": b64url(b'{"challenge": 1}')}}},
        {"credential": {"response": []}},
        {"credential": {}, "name": ""},
        {"credential": {}, "name": "x" * 65},
        {"credential": {}, "name": "a\nb"},
        {"credential": {}, "extra": 1},
    ],
)
async def test_malformed_registrations_are_422(
    auth: AuthHarness, account: Account, body: dict[str, Any]
) -> None:
    access = (await auth.login(account))["access_token"]
    await options_for(auth, access)
    response = await auth.client.post(f"{BASE}/register", json=body, headers=bearer(access))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_broken_attestation_is_422(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    credential = SoftAuthenticator().create(await options_for(auth, access), ISSUER)
    credential["response"]["attestationObject"] = b64url(b"\xff\x00garbage")
    refused = await register(auth, access, credential)
    assert refused.status_code == 422, refused.text


async def test_someone_elses_passkey_is_404(auth: AuthHarness, account: Account) -> None:
    access = (await auth.login(account))["access_token"]
    created = await register(
        auth, access, SoftAuthenticator().create(await options_for(auth, access), ISSUER)
    )
    other = (await auth.login(auth.users.add()))["access_token"]
    for passkey_id in (created.json()["id"], "not-a-uuid", "x" * 500):
        response = await auth.client.delete(f"{BASE}/{passkey_id}", headers=bearer(other))
        assert response.status_code == 404
    assert len((await auth.client.get(BASE, headers=bearer(access))).json()) == 1


async def test_passkey_changes_need_a_recent_login(auth: AuthHarness, account: Account) -> None:
    auth.clock.advance(-400)
    try:
        stale = (await auth.login(account))["access_token"]
    finally:
        auth.clock.advance(400)
    for method, url in (
        ("POST", f"{BASE}/register/options"),
        ("POST", f"{BASE}/register"),
        ("DELETE", f"{BASE}/00000000-0000-0000-0000-000000000000"),
    ):
        response = await auth.client.request(
            method, url, json={"credential": {}}, headers=bearer(stale)
        )
        assert response.status_code == 401, (url, response.text)
        assert "insufficient_user_authentication" in response.headers["www-authenticate"]
    assert (await auth.client.get(BASE, headers=bearer(stale))).status_code == 200


async def test_the_register_path_is_not_taken_for_a_passkey_id(
    auth: AuthHarness, account: Account
) -> None:
    """Found by schemathesis: OPTIONS of /register listed DELETE (the `{passkey_id}` route took
    `register` for an id), which the document does not declare there."""
    access = (await auth.login(account))["access_token"]
    options = await auth.client.options(f"{BASE}/register", headers=bearer(access))
    assert options.status_code == 204
    assert options.headers["allow"] == "OPTIONS, POST"
    deleted = await auth.client.delete(f"{BASE}/register", headers=bearer(access))
    assert deleted.status_code == 405
    assert deleted.headers["allow"] == "OPTIONS, POST"
