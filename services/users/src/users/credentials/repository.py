"""All SQL about the lockout rows (`LoginLockout`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from users.models import LoginLockout


async def lockout_of(db: AsyncSession, user_id: uuid.UUID) -> LoginLockout | None:
    return await db.get(LoginLockout, user_id, populate_existing=True)


async def locked_lockout_of(db: AsyncSession, user_id: uuid.UUID, now: datetime) -> LoginLockout:
    """The account's row, created when missing, locked until the transaction ends: concurrent
    failures of one account, on any replica, are counted one after the other."""
    insert = postgresql_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    await db.execute(
        insert(LoginLockout)
        .values(user_id=user_id, recent_failures=[], lockouts=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=[LoginLockout.user_id])
    )
    statement = (
        select(LoginLockout)
        .where(LoginLockout.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await db.scalars(statement)).one()


async def delete_lockout(db: AsyncSession, user_id: uuid.UUID) -> datetime | None:
    """Forget the account's failures and lockouts; returns when its lock would have ended (None:
    it was not locked, or had no row)."""
    result = await db.execute(
        delete(LoginLockout)
        .where(LoginLockout.user_id == user_id)
        .returning(LoginLockout.locked_until)
    )
    row = result.one_or_none()
    return None if row is None else row[0]
