"""All SQL about passkeys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.passkeys.models import Passkey, PasskeyChallenge


async def add_challenge(db: AsyncSession, challenge: PasskeyChallenge, now: datetime) -> None:
    await db.execute(delete(PasskeyChallenge).where(PasskeyChallenge.expires_at < now))
    db.add(challenge)
    await db.flush()


async def take_challenge(
    db: AsyncSession, challenge_hash: str, user_id: str, now: datetime
) -> bool:
    """Use the user's challenge up: of concurrent uses, exactly one gets True."""
    result = await db.execute(
        delete(PasskeyChallenge)
        .where(
            PasskeyChallenge.challenge_hash == challenge_hash,
            PasskeyChallenge.user_id == user_id,
            PasskeyChallenge.expires_at > now,
        )
        .returning(PasskeyChallenge.challenge_hash)
    )
    return result.one_or_none() is not None


async def passkeys_of(db: AsyncSession, user_id: str) -> Sequence[Passkey]:
    result = await db.scalars(
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at.desc())
    )
    return result.all()


async def credential_taken(db: AsyncSession, credential_id: bytes) -> bool:
    found = await db.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id))
    return found is not None


async def add_passkey(db: AsyncSession, passkey: Passkey) -> None:
    db.add(passkey)
    await db.flush()


async def delete_passkey(db: AsyncSession, user_id: str, passkey_id: str) -> bool:
    result = await db.execute(
        delete(Passkey)
        .where(Passkey.id == passkey_id, Passkey.user_id == user_id)
        .returning(Passkey.id)
    )
    return result.one_or_none() is not None


async def passkey_by_credential(db: AsyncSession, credential_id: bytes) -> Passkey | None:
    result = await db.scalars(select(Passkey).where(Passkey.credential_id == credential_id))
    return result.one_or_none()


async def record_use(db: AsyncSession, passkey_id: str, sign_count: int, now: datetime) -> None:
    await db.execute(
        update(Passkey)
        .where(Passkey.id == passkey_id)
        .values(sign_count=sign_count, last_used_at=now)
    )
