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


async def lock_key_changes(session: AsyncSession) -> None:
    """Serialise bootstrap and rotation across replicas (PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": KEY_LOCK_ID})


async def active_key(session: AsyncSession) -> SigningKey | None:
    result = await session.execute(select(SigningKey).where(SigningKey.status == KeyStatus.ACTIVE))
    return result.scalar_one_or_none()


async def oldest_pending_key(session: AsyncSession) -> SigningKey | None:
    result = await session.execute(
        select(SigningKey)
        .where(SigningKey.status == KeyStatus.PENDING)
        .order_by(SigningKey.created_at)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def published_keys(session: AsyncSession, retired_after: datetime) -> Sequence[SigningKey]:
    """Pending and active keys, and retired keys retired after `retired_after`."""
    result = await session.execute(
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
    session: AsyncSession, wrapped: WrappedKey, status: KeyStatus, now: datetime
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
    session.add(key)
    await session.flush()
    return key


async def retire_key(session: AsyncSession, kid: str, now: datetime) -> None:
    await session.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid)
        .values(status=KeyStatus.RETIRED, retired_at=now)
    )


async def activate_key(session: AsyncSession, kid: str, now: datetime) -> None:
    await session.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid)
        .values(status=KeyStatus.ACTIVE, activated_at=now)
    )


async def delete_keys_retired_before(session: AsyncSession, moment: datetime) -> int:
    """Forget keys no token can need any more (their private halves included)."""
    result = await session.execute(
        delete(SigningKey).where(
            SigningKey.status == KeyStatus.RETIRED, SigningKey.retired_at <= moment
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def all_keys(session: AsyncSession) -> Sequence[SigningKey]:
    result = await session.execute(select(SigningKey).order_by(SigningKey.created_at))
    return result.scalars().all()
