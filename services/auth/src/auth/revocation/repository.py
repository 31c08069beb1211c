"""All SQL about revocation: the per-user not-before times, what a restore reads, and the lock
that orders revocations against a restore."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from common.db import Database
from sqlalchemy import bindparam, case, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth.revocation.models import UserNotBefore
from auth.sessions.models import LoginSession

# pg_advisory_xact_lock id ordering revocations against a restore ("gh-revoc" as an integer).
REVOCATION_LOCK_ID = 0x6768_2D72_6576_6F63


def _is_postgresql(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "postgresql"


async def hold_revocation_lock(db: AsyncSession) -> None:
    """Taken (shared) by every transaction that revokes, until it commits: a restore, which takes
    it exclusively, waits for those in flight and so reads every revocation whose marker may have
    gone to the Redis that was lost. SQLite (embedded: one process) needs no lock."""
    if _is_postgresql(db):
        await db.execute(
            text("SELECT pg_advisory_xact_lock_shared(:id)"), {"id": REVOCATION_LOCK_ID}
        )


async def hold_restore_lock(db: AsyncSession, timeout_ms: int) -> None:
    if _is_postgresql(db):
        await db.execute(text(f"SET LOCAL lock_timeout = {int(timeout_ms)}"))
        await db.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": REVOCATION_LOCK_ID})


async def raise_user_not_before(db: AsyncSession, user_id: str, moment: datetime) -> None:
    """Record that the user's tokens issued before `moment` are refused; never moves back."""
    insert = postgresql_insert if _is_postgresql(db) else sqlite_insert
    statement = insert(UserNotBefore).values(user_id=user_id, not_before=moment)
    statement = statement.on_conflict_do_update(
        index_elements=[UserNotBefore.user_id],
        set_={
            "not_before": case(
                (
                    statement.excluded.not_before > UserNotBefore.not_before,
                    statement.excluded.not_before,
                ),
                else_=UserNotBefore.not_before,
            )
        },
    )
    await db.execute(statement)


async def sessions_revoked_since(db: AsyncSession, since: datetime) -> list[tuple[str, datetime]]:
    result = await db.execute(
        select(LoginSession.id, LoginSession.revoked_at).where(LoginSession.revoked_at >= since)
    )
    return [(row[0], row[1]) for row in result.all() if row[1] is not None]


async def users_not_before_since(db: AsyncSession, since: datetime) -> list[tuple[str, datetime]]:
    result = await db.execute(
        select(UserNotBefore.user_id, UserNotBefore.not_before).where(
            UserNotBefore.not_before >= since
        )
    )
    return [(row[0], row[1]) for row in result.all()]


# Built once (see `Database.read_rows`): what introspection asks of every access token, in one
# statement: is its session live (null: no such session, or the token names none), and the
# not-before time of its user (null: none).
ACCESS_TOKEN_STATE = select(
    select(LoginSession.revoked_at.is_(None))
    .where(LoginSession.id == bindparam("session_id"))
    .scalar_subquery()
    .label("session_live"),
    select(UserNotBefore.not_before)
    .where(UserNotBefore.user_id == bindparam("user_id"))
    .scalar_subquery()
    .label("not_before"),
)


async def access_token_state(
    database: Database, session_id: str | None, user_id: str
) -> Mapping[str, Any]:
    """`session_live` and `not_before` for a token of `user_id` (and of `session_id`, if it
    names one), read together outside any transaction (`Database.read_rows`)."""
    rows = await database.read_rows(
        ACCESS_TOKEN_STATE, {"session_id": session_id, "user_id": user_id}
    )
    return rows[0]
