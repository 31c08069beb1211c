"""All SQL about the lockout rows (`LoginLockout`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, false, func, literal, select, update
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


# No account has it (ids are uuid4): the row the statements of an unknown login's refusal name.
NO_ACCOUNT = uuid.UUID(int=0)


async def refuse_as_counted(db: AsyncSession, now: datetime) -> None:
    """The statements of a counted wrong password (`lockout_of`, `locked_lockout_of`, the row's
    update), changing nothing, for a login that names no active account: an unknown login's
    refusal must cost what an existing account's does, or its timing tells which names exist.
    The insert takes a transaction id as the real update does, so that the commit writes and
    flushes its WAL record as the real one's does (PostgreSQL: the lockout's dialect)."""
    await db.get(LoginLockout, NO_ACCOUNT, populate_existing=True)
    postgresql = db.get_bind().dialect.name == "postgresql"
    insert = postgresql_insert if postgresql else sqlite_insert
    # Inserts nothing; on PostgreSQL its one-time filter assigns the transaction id.
    nothing = func.pg_current_xact_id().is_(None) if postgresql else false()
    row = select(
        literal(NO_ACCOUNT, LoginLockout.user_id.type),
        literal([], LoginLockout.recent_failures.type),
        literal(0),
        literal(now, LoginLockout.updated_at.type),
    ).where(nothing)
    columns = ["user_id", "recent_failures", "lockouts", "updated_at"]
    await db.execute(
        insert(LoginLockout)
        .from_select(columns, row)
        .on_conflict_do_nothing(index_elements=[LoginLockout.user_id])
    )
    locked = select(LoginLockout).where(LoginLockout.user_id == NO_ACCOUNT).with_for_update()
    await db.scalars(locked.execution_options(populate_existing=True))
    await db.execute(
        update(LoginLockout).where(LoginLockout.user_id == NO_ACCOUNT).values(updated_at=now)
    )
