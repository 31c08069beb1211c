"""The key lifecycle (bootstrap, rotation) and the in-memory key ring every replica signs with.

Rotation without downtime (API.md §2): a new key is created `pending` and published in the JWKS;
it is promoted to `active` only once every verifier can have fetched it (the JWKS max-age plus the
interval at which replicas re-read the keys). The old key is `retired` and stays published until
every token it signed has expired, then it is deleted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from common.db import Database
from common.tokens import InvalidToken, JwksCache, parse_jwks
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit import audit
from auth.clock import Clock
from auth.keys import repository
from auth.keys.crypto import KeyDecryptionFailed, generate_wrapped_key, rewrap, unwrap
from auth.keys.models import KeyStatus, SigningKey
from auth.settings import AuthSettings

logger = logging.getLogger("gatehouse.auth.keys")


@dataclass(frozen=True, slots=True)
class ActiveSigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    action: str  # "created", "promoted", "waiting", "none"
    kid: str | None = None
    detail: str = ""


class NoActiveKey(Exception):
    """No active signing key is loaded (the database has none yet)."""


def publish_delay(settings: AuthSettings) -> timedelta:
    """How long a pending key is published before it may sign."""
    return timedelta(seconds=settings.jwks_cache_seconds + settings.key_refresh_seconds)


def retired_key_keep(settings: AuthSettings) -> timedelta:
    """How long a retired key stays published: the longest a token it signed may be presented,
    plus the interval in which a replica may still sign with it before re-reading the keys."""
    return timedelta(seconds=settings.max_access_token_lifetime + settings.key_refresh_seconds)


@dataclass
class KeyRing:
    """What this replica signs with and publishes; reloaded from the database periodically.

    The private key is decrypted once per kid and kept parsed in memory, not per request."""

    settings: AuthSettings
    clock: Clock
    signing: ActiveSigningKey | None = None
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    # `jwks` as the JWKS endpoint answers it, encoded once per reload rather than per request.
    jwks_json: bytes = b'{"keys":[]}'
    # kid → parsed public key, for auth's own verification (no HTTP, no cache lag).
    public_keys: dict[str, Any] = field(default_factory=dict)

    def active(self) -> ActiveSigningKey:
        if self.signing is None:
            raise NoActiveKey("no active signing key loaded")
        return self.signing

    async def reload(self, db: AsyncSession) -> None:
        now = self.clock()
        keys = await repository.published_keys(db, now - retired_key_keep(self.settings))
        entries = []
        for key in keys:
            jwk = json.loads(key.public_jwk)
            jwk.update({"kid": key.kid, "use": "sig", "alg": "RS256"})
            entries.append(jwk)
        active = next((key for key in keys if key.status == KeyStatus.ACTIVE), None)
        if active is not None and (self.signing is None or self.signing.kid != active.kid):
            private_key = unwrap(
                active.kid,
                active.private_key_nonce,
                active.private_key_ciphertext,
                self.settings.key_encryption_key_bytes(),
            )
            self.signing = ActiveSigningKey(active.kid, private_key)
            logger.info("signing with key %s", active.kid)
        self.jwks = {"keys": entries}
        self.jwks_json = json.dumps(self.jwks, separators=(",", ":")).encode()
        self.public_keys = parse_jwks(self.jwks)

    async def reload_from(self, database: Database) -> None:
        async with database.sessionmaker() as db:
            await self.reload(db)


async def _create_key(
    db: AsyncSession, settings: AuthSettings, status: KeyStatus, now: datetime
) -> SigningKey:
    wrapped, _ = await generate_wrapped_key(
        settings.rsa_key_bits, settings.key_encryption_key_bytes()
    )
    return await repository.insert_key(db, wrapped, status, now)


async def ensure_active_key(database: Database, settings: AuthSettings, clock: Clock) -> None:
    """At start: make sure exactly one active key exists, however many replicas start at once.

    The key is generated before taking the lock (so the lock is held briefly); the advisory lock
    serialises replicas on PostgreSQL and the partial unique index is the backstop everywhere."""
    async with database.sessionmaker() as db:
        if await repository.active_key(db) is not None:
            return
    wrapped, _ = await generate_wrapped_key(
        settings.rsa_key_bits, settings.key_encryption_key_bytes()
    )
    try:
        async with database.sessionmaker() as db, db.begin():
            await repository.lock_key_changes(db)
            if await repository.active_key(db) is not None:
                return
            now = clock()
            pending = await repository.oldest_pending_key(db)
            if pending is not None:
                # Already published: promote it rather than sign with an unpublished key.
                await repository.activate_key(db, pending.kid, now)
                kid = pending.kid
            else:
                kid = (await repository.insert_key(db, wrapped, KeyStatus.ACTIVE, now)).kid
    except IntegrityError:
        logger.info("another replica created the first signing key")
        return
    audit("key.created", kid=kid, status="active")


async def rotation_step(
    db: AsyncSession, settings: AuthSettings, now: datetime, *, due: bool
) -> RotationOutcome:
    """One step of rotation, under the key lock; run it again later to finish a rotation.

    No pending key and rotation `due`: create one (published, not yet signing). A pending key
    published for at least `publish_delay`: promote it and retire the active key. Also forgets
    retired keys no token can need any more."""
    await repository.lock_key_changes(db)
    removed = await repository.delete_keys_retired_before(db, now - retired_key_keep(settings))
    if removed:
        logger.info("deleted %d retired signing keys", removed)
    active = await repository.active_key(db)
    pending = await repository.oldest_pending_key(db)
    if pending is None:
        if not due and active is not None:
            return RotationOutcome("none")
        status = KeyStatus.PENDING if active is not None else KeyStatus.ACTIVE
        key = await _create_key(db, settings, status, now)
        audit("key.created", kid=key.kid, status=str(status))
        return RotationOutcome("created", key.kid, f"new {status} key")
    ready_at = pending.created_at + publish_delay(settings)
    if now < ready_at:
        return RotationOutcome("waiting", pending.kid, f"promotable at {ready_at.isoformat()}")
    if not due and active is not None:
        return RotationOutcome("none")
    if active is not None:
        await repository.retire_key(db, active.kid, now)
    await repository.activate_key(db, pending.kid, now)
    audit("key.rotated", kid=pending.kid, retired_kid=active.kid if active else None)
    return RotationOutcome("promoted", pending.kid, "now signing")


def rotation_due(active: SigningKey | None, settings: AuthSettings, now: datetime) -> bool:
    if active is None or active.activated_at is None:
        return True
    interval = timedelta(seconds=settings.key_rotation_interval)
    return now - active.activated_at >= interval


async def scheduled_rotation(
    database: Database, settings: AuthSettings, clock: Clock
) -> RotationOutcome:
    """What the background task runs each interval: rotate when the active key is old enough."""
    async with database.sessionmaker() as db, db.begin():
        now = clock()
        active = await repository.active_key(db)
        due = rotation_due(active, settings, now)
        pending = await repository.oldest_pending_key(db)
        if not due and pending is None:
            # Nothing to do: skip the lock (every replica runs this every minute).
            return RotationOutcome("none")
        # A pending key (from the schedule or an operator) is promoted once it is ready.
        return await rotation_step(db, settings, now, due=True)


async def rewrap_keys(db: AsyncSession, old_kek: bytes, new_kek: bytes) -> int:
    """Re-encrypt every stored private key from `old_kek` to `new_kek` (changing the KEK).
    Keys already under `new_kek` are left alone, so the command can be re-run."""
    changed = 0
    await repository.lock_key_changes(db)
    for key in await repository.all_keys(db):
        try:
            unwrap(key.kid, key.private_key_nonce, key.private_key_ciphertext, new_kek)
            continue
        except KeyDecryptionFailed:
            pass
        wrapped = rewrap(
            key.kid, key.private_key_nonce, key.private_key_ciphertext, old_kek, new_kek
        )
        key.private_key_nonce, key.private_key_ciphertext = wrapped.nonce, wrapped.ciphertext
        changed += 1
    await db.flush()
    if changed:
        audit("key.rewrapped", count=changed)
    return changed


class KeyRingJwks(JwksCache):
    """The `JwksCache` the verifiers inside auth use: the ring's current keys, exactly."""

    def __init__(self, ring: KeyRing) -> None:
        async def fetch() -> dict[str, Any]:
            return ring.jwks

        super().__init__(fetch)
        self.ring = ring

    def cached(self, kid: str) -> Any | None:
        return self.ring.public_keys.get(kid)

    async def key_for(self, kid: str) -> Any:
        key = self.cached(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        return key
