"""All SQL about signing keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.keys.crypto import WrappedKey
from auth.keys.models import KeyStatus, SigningKey

# pg_advisory_xact_lock id serialising key changes across replicas ("gh-keys" as an integer).
KEY_LOCK_ID = 0x67682D6B657973


async def lock_key_changes(db: AsyncSession) -> None:
    """Serialise bootstrap and rotation across replicas (PostgreSQL; SQLite has one writer)."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": KEY_LOCK_ID})


async def active_key(db: AsyncSession) -> SigningKey | None:
    result = await db.execute(select(SigningKey).where(SigningKey.status == KeyStatus.ACTIVE))
    return result.scalar_one_or_none()


async def oldest_pending_key(db: AsyncSession) -> SigningKey | None:
    result = await db.execute(
        select(SigningKey)
        .where(SigningKey.status == KeyStatus.PENDING)
        .order_by(SigningKey.created_at)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def published_keys(db: AsyncSession, retired_after: datetime) -> Sequence[SigningKey]:
    """Pending and active keys, and retired keys retired after `retired_after`."""
    result = await db.execute(
        select(SigningKey)
        .where(
            or_(
                SigningKey.status.in_([KeyStatus.PENDING, KeyStatus.ACTIVE]),
                SigningKey.retired_at > retired_after,
            )
        )
        .order_by(SigningKey.created_at)
    )
    return result.scalars().all()


async def insert_key(
    db: AsyncSession, wrapped: WrappedKey, status: KeyStatus, now: datetime
) -> SigningKey:
    key = SigningKey(
        kid=wrapped.kid,
        status=status,
        public_jwk=wrapped.public_jwk,
        private_key_nonce=wrapped.nonce,
        private_key_ciphertext=wrapped.ciphertext,
        created_at=now,
        activated_at=now if status is KeyStatus.ACTIVE else None,
    )
    db.add(key)
    await db.flush()
    return key


async def retire_key(db: AsyncSession, kid: str, now: datetime) -> None:
    await db.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid)
        .values(status=KeyStatus.RETIRED, retired_at=now)
    )


async def activate_key(db: AsyncSession, kid: str, now: datetime) -> None:
    await db.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid)
        .values(status=KeyStatus.ACTIVE, activated_at=now)
    )


async def delete_keys_retired_before(db: AsyncSession, moment: datetime) -> int:
    """Forget keys no token can need any more (their private halves included)."""
    result = await db.execute(
        delete(SigningKey).where(
            SigningKey.status == KeyStatus.RETIRED, SigningKey.retired_at <= moment
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def all_keys(db: AsyncSession) -> Sequence[SigningKey]:
    result = await db.execute(select(SigningKey).order_by(SigningKey.created_at))
    return result.scalars().all()
