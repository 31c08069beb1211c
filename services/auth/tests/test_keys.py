"""Signing keys: encryption at rest, the JWKS, first-start races and rotation without downtime."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from auth.__main__ import rewrap, rotate_keys
from auth.clock import system_clock
from auth.keys import repository
from auth.keys.crypto import KeyDecryptionFailed, unwrap, wrap
from auth.keys.models import KeyStatus, SigningKey
from auth.keys.service import (
    ensure_active_key,
    publish_delay,
    retired_key_keep,
    rotation_step,
    scheduled_rotation,
)
from common.db import Database
from common.hot import HotRoute
from common.testing import AUDIENCE, ISSUER, TokenFactory, fresh_database, without_hot_routes
from common.tokens import InvalidToken, JwksCache, TokenVerifier
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from .support import (
    MIGRATIONS,
    AuthHarness,
    auth_settings,
    header_of,
    introspect_as_gateway,
    running_auth,
)
from .users_double import Account


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_private_key_round_trips_through_aes_gcm(rsa_key: rsa.RSAPrivateKey) -> None:
    kek = os.urandom(32)
    wrapped = wrap(rsa_key, kek)
    assert b"PRIVATE" not in wrapped.ciphertext
    opened = unwrap(wrapped.kid, wrapped.nonce, wrapped.ciphertext, kek)
    assert opened.private_numbers() == rsa_key.private_numbers()


def test_wrong_kek_does_not_open_the_key(rsa_key: rsa.RSAPrivateKey) -> None:
    wrapped = wrap(rsa_key, os.urandom(32))
    with pytest.raises(KeyDecryptionFailed):
        unwrap(wrapped.kid, wrapped.nonce, wrapped.ciphertext, os.urandom(32))


def test_kid_is_bound_to_the_ciphertext(rsa_key: rsa.RSAPrivateKey) -> None:
    kek = os.urandom(32)
    wrapped = wrap(rsa_key, kek)
    with pytest.raises(KeyDecryptionFailed):
        unwrap("another-kid", wrapped.nonce, wrapped.ciphertext, kek)


async def test_jwks_publishes_public_keys_only(auth: AuthHarness) -> None:
    response = await auth.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == auth.state.key_ring.jwks
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert {"kty", "kid", "use", "alg", "n", "e"} == set(key)
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")
        assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 >= 2048


async def test_the_plain_asgi_key_set_answers_as_the_fastapi_route(auth: AuthHarness) -> None:
    """auth.hot serves the key set before FastAPI (a `common.hot.HotRoute`): the same status,
    body bytes and headers as the FastAPI route; other methods on the path go on to FastAPI."""
    path = "/.well-known/jwks.json"
    assert path in [m.kwargs["path"] for m in auth.app.user_middleware if m.cls is HotRoute]  # type: ignore[comparison-overlap]
    transport = httpx.ASGITransport(app=without_hot_routes(auth.app))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as plain:
        for method in ("GET", "POST", "HEAD"):
            headers = {"X-Request-ID": f"same-{method}"}  # the one header that would differ
            hot = await auth.client.request(method, path, headers=headers)
            route = await plain.request(method, path, headers=headers)
            assert (hot.status_code, hot.content) == (route.status_code, route.content)
            assert hot.headers.multi_items() == route.headers.multi_items()
            assert hot.status_code == (200 if method == "GET" else 405)


async def test_discovery_document(auth: AuthHarness) -> None:
    response = await auth.client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    body = response.json()
    assert body["issuer"] == ISSUER
    assert body["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert body["token_endpoint"] == f"{ISSUER}/api/v1/auth/token"
    assert body["revocation_endpoint"] == f"{ISSUER}/api/v1/auth/revoke"
    assert body["introspection_endpoint"].endswith("/internal/v1/introspect")
    assert set(body["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert "client_secret_basic" in body["token_endpoint_auth_methods_supported"]
    assert body["id_token_signing_alg_values_supported"] == ["RS256"]
    # API.md §13: the OpenID Connect provider's fields.
    assert body["authorization_endpoint"] == f"{ISSUER}/api/v1/auth/authorize"
    assert body["userinfo_endpoint"] == f"{ISSUER}/api/v1/auth/userinfo"
    assert body["end_session_endpoint"] == f"{ISSUER}/api/v1/auth/end-session"
    assert body["response_types_supported"] == ["code"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["subject_types_supported"] == ["public"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert {"openid", "profile", "email", "users:read"} <= set(body["scopes_supported"])
    assert {
        "sub",
        "auth_time",
        "nonce",
        "amr",
        "at_hash",
        "email",
        "email_verified",
        "preferred_username",
        "name",
    } <= set(body["claims_supported"])


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    async with fresh_database("auth", MIGRATIONS) as url:
        yield url


async def test_replicas_starting_together_create_exactly_one_active_key(
    empty_database: str,
) -> None:
    settings = auth_settings(empty_database)
    databases = [Database(empty_database) for _ in range(4)]
    try:
        await asyncio.gather(
            *(ensure_active_key(database, settings, auth_clock) for database in databases)
        )
        async with databases[0].sessionmaker() as db:
            count = await db.scalar(select(func.count()).select_from(SigningKey))
            active = await repository.active_key(db)
        assert count == 1
        assert active is not None
    finally:
        for database in databases:
            await database.dispose()


def auth_clock() -> datetime:
    return system_clock()


async def test_rotation_without_downtime(empty_database: str) -> None:
    async with running_auth(empty_database) as auth:
        settings, ring, database = auth.settings, auth.state.key_ring, auth.state.db
        account: Account = auth.users.add()
        verifier = TokenVerifier(
            JwksCache(auth.jwks, max_age=0.001, refetch_cooldown=0),
            issuer=ISSUER,
            audience=AUDIENCE,
        )
        old_pair = await auth.login(account)
        old_kid = header_of(old_pair["access_token"])["kid"]
        start = auth.clock()

        # 1. A pending key is published before it signs anything.
        async with database.sessionmaker() as db, db.begin():
            created = await rotation_step(db, settings, start, due=True)
        assert created.action == "created"
        await ring.reload_from(database)
        published = {key["kid"] for key in (await auth.jwks())["keys"]}
        assert published == {old_kid, created.kid}
        assert header_of((await auth.login(account))["access_token"])["kid"] == old_kid

        # 2. It is not promoted before every verifier can have fetched it.
        async with database.sessionmaker() as db, db.begin():
            early = await rotation_step(db, settings, start + timedelta(seconds=1), due=True)
        assert early.action == "waiting"

        # 3. Promotion: new tokens use the new key; the old key's tokens still verify.
        promote_at = start + publish_delay(settings)
        async with database.sessionmaker() as db, db.begin():
            promoted = await rotation_step(db, settings, promote_at, due=True)
        assert promoted.action == "promoted"
        await ring.reload_from(database)
        new_pair = await auth.login(account)
        assert header_of(new_pair["access_token"])["kid"] == created.kid
        assert (await verifier.verify(old_pair["access_token"])).subject == account.user_id
        assert (await verifier.verify(new_pair["access_token"])).subject == account.user_id
        assert (await introspect_as_gateway(auth, old_pair["access_token"]))["active"] is True

        # 4. Once no token of the old key can be live, it is unpublished and deleted.
        gone_at = promote_at + retired_key_keep(settings) + timedelta(seconds=1)
        async with database.sessionmaker() as db, db.begin():
            await rotation_step(db, settings, gone_at, due=False)
        await ring.reload_from(database)
        assert {key["kid"] for key in (await auth.jwks())["keys"]} == {created.kid}
        with pytest.raises(InvalidToken):
            await verifier.verify(old_pair["access_token"])
        assert await introspect_as_gateway(auth, old_pair["access_token"]) == {"active": False}


async def test_token_from_an_unpublished_key_is_refused(
    auth: AuthHarness, account: Account
) -> None:
    forger = TokenFactory(ISSUER, AUDIENCE, kid="attacker-key")
    forged = forger.access_token(account.user_id, session_id="s")
    response = await auth.client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401
    assert await introspect_as_gateway(auth, forged) == {"active": False}
    # Same kid as the real key, different key material: the signature fails.
    real_kid = auth.state.key_ring.active().kid
    twin = TokenFactory(ISSUER, AUDIENCE, kid=real_kid).access_token(account.user_id)
    assert await introspect_as_gateway(auth, twin) == {"active": False}


async def test_schedule_and_command_rotate_keys(empty_database: str) -> None:
    settings = auth_settings(empty_database, key_rotation_interval=3600)
    database = Database(empty_database)
    try:
        await ensure_active_key(database, settings, auth_clock)
        now = auth_clock()
        assert (await scheduled_rotation(database, settings, lambda: now)).action == "none"
        due = now + timedelta(seconds=3600)
        assert (await scheduled_rotation(database, settings, lambda: due)).action == "created"
        later = due + publish_delay(settings)
        assert (await scheduled_rotation(database, settings, lambda: later)).action == "promoted"
        # The command: one step at a time (creates a pending key; it must wait to be promoted).
        assert (await rotate_keys(settings)).action in {"created", "waiting"}
        assert (await rotate_keys(settings)).action == "waiting"
        async with database.sessionmaker() as db:
            statuses = sorted((await db.scalars(select(SigningKey.status))).all())
        assert statuses == [KeyStatus.ACTIVE, KeyStatus.PENDING, KeyStatus.RETIRED]
    finally:
        await database.dispose()


async def test_rewrap_moves_every_key_to_the_new_kek(empty_database: str) -> None:
    old = auth_settings(empty_database)
    new_kek = base64.urlsafe_b64encode(os.urandom(32)).decode()
    new = auth_settings(empty_database, auth_key_encryption_key=new_kek)
    database = Database(empty_database)
    try:
        await ensure_active_key(database, old, auth_clock)
        assert await rewrap(new, old.key_encryption_key_bytes()) == 1
        assert await rewrap(new, old.key_encryption_key_bytes()) == 0  # re-runnable
        async with database.sessionmaker() as db:
            key = await repository.active_key(db)
        assert key is not None
        unwrap(
            key.kid,
            key.private_key_nonce,
            key.private_key_ciphertext,
            new.key_encryption_key_bytes(),
        )
        with pytest.raises(KeyDecryptionFailed):
            unwrap(
                key.kid,
                key.private_key_nonce,
                key.private_key_ciphertext,
                old.key_encryption_key_bytes(),
            )
    finally:
        await database.dispose()
