"""All SQL about sessions and refresh tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from common.db import Database
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.sessions.models import LoginSession, RefreshToken

# The tables themselves, for the refresh's statements: Core, no ORM unit of work or identity map.
SESSIONS = cast(Table, LoginSession.__table__)
REFRESH_TOKENS = cast(Table, RefreshToken.__table__)


@dataclass(frozen=True, slots=True)
class ClaimedRefreshToken:
    session_id: str
    idle_expires_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshedSession:
    """What a refresh reads of its session: the columns its checks and its new tokens need."""

    id: str
    user_id: str
    client_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    auth_time: datetime | None
    amr: str | None
    scope: str | None


# A refresh's statements, built once: each execution reuses the statement's compiled form and
# cache key instead of building and hashing a new statement.
REFRESHED_SESSION = select(
    *(SESSIONS.c[name] for name in RefreshedSession.__dataclass_fields__)
).where(SESSIONS.c.id == bindparam("session_id"))
CLAIM_REFRESH_TOKEN = (
    update(REFRESH_TOKENS)
    .where(
        REFRESH_TOKENS.c.token_hash == bindparam("hash"),
        REFRESH_TOKENS.c.used_at.is_(None),
        REFRESH_TOKENS.c.revoked_at.is_(None),
    )
    .values(used_at=bindparam("now"))
    .returning(REFRESH_TOKENS.c.session_id, REFRESH_TOKENS.c.idle_expires_at)
)
TOUCH_SESSION = (
    update(SESSIONS)
    .where(SESSIONS.c.id == bindparam("session"))
    .values(
        last_used_at=bindparam("now"),
        client_ip=bindparam("ip"),
        user_agent=bindparam("agent"),
    )
)
ADD_REFRESH_TOKEN = insert(REFRESH_TOKENS).values(
    token_hash=bindparam("hash"),
    session_id=bindparam("session"),
    created_at=bindparam("now"),
    idle_expires_at=bindparam("idle_end"),
)


async def add_session(db: AsyncSession, login_session: LoginSession) -> None:
    db.add(login_session)
    await db.flush()


async def add_refresh_token(
    db: AsyncSession,
    session_id: str,
    token_hash: str,
    now: datetime,
    idle_expires_at: datetime,
) -> None:
    """One Core INSERT, in the request's transaction (nothing for the ORM to flush)."""
    await db.execute(
        ADD_REFRESH_TOKEN,
        {"hash": token_hash, "session": session_id, "now": now, "idle_end": idle_expires_at},
    )


async def claim_refresh_token(
    db: AsyncSession, token_hash: str, now: datetime
) -> ClaimedRefreshToken | None:
    """Mark the token used, atomically: of concurrent claims exactly one gets a row back."""
    result = await db.execute(CLAIM_REFRESH_TOKEN, {"hash": token_hash, "now": now})
    row = result.one_or_none()
    return None if row is None else ClaimedRefreshToken(row[0], row[1])


async def find_refresh_token(db: AsyncSession, token_hash: str) -> RefreshToken | None:
    result = await db.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    return result.scalar_one_or_none()


# Built once (see `Database.read_rows`): a refresh token's state and its session's, as
# introspection reads them (the session's columns null when it is gone).
REFRESH_TOKEN_STATE = (
    select(
        RefreshToken.created_at,
        RefreshToken.idle_expires_at,
        RefreshToken.used_at,
        RefreshToken.revoked_at,
        LoginSession.id.label("session_id"),
        LoginSession.user_id,
        LoginSession.client_id,
        LoginSession.expires_at.label("session_expires_at"),
        LoginSession.revoked_at.label("session_revoked_at"),
    )
    .outerjoin(LoginSession, LoginSession.id == RefreshToken.session_id)
    .where(RefreshToken.token_hash == bindparam("token_hash"))
)


async def refresh_token_state(database: Database, token_hash: str) -> Mapping[str, Any] | None:
    """The refresh token with this hash joined with its session, in one read outside any
    transaction (`Database.read_rows`), or None for an unknown hash."""
    rows = await database.read_rows(REFRESH_TOKEN_STATE, {"token_hash": token_hash})
    return rows[0] if rows else None


async def get_login_session(db: AsyncSession, session_id: str) -> LoginSession | None:
    return await db.get(LoginSession, session_id, populate_existing=True)


async def refreshed_session(db: AsyncSession, session_id: str) -> RefreshedSession | None:
    """The session a claimed refresh token belongs to (one Core SELECT, no ORM load)."""
    row = (await db.execute(REFRESHED_SESSION, {"session_id": session_id})).one_or_none()
    return None if row is None else RefreshedSession(*row)


async def touch_session(
    db: AsyncSession,
    session_id: str,
    now: datetime,
    client_ip: str | None,
    user_agent: str | None,
) -> None:
    """A refresh: the session was used now, from there (what its owner's list shows)."""
    await db.execute(
        TOUCH_SESSION,
        {"session": session_id, "now": now, "ip": client_ip, "agent": user_agent},
    )


async def revoke_sessions(
    db: AsyncSession, session_ids: Sequence[str], now: datetime, reason: str
) -> list[str]:
    """Revoke the sessions and their refresh tokens (but a token a refresh has locked, which
    dies with its session all the same); returns the sessions newly revoked."""
    if not session_ids:
        return []
    # No revocation waits for a token's lock, so none deadlocks with a refresh. A refresh locks
    # its token (the claim), then its session; a claim that lost a race keeps its lock on the
    # token too (PostgreSQL locks the row it re-checks). A revocation that waited for tokens
    # (it once updated them all in scan order) could hold one and wait for another while a
    # losing refresh, holding that one, waited for it: a deadlock (seen in CI). So tokens
    # locked elsewhere are skipped: they die with their session, which refresh and
    # introspection check. Sessions are locked in key order, the only locks revocations wait on.
    live_tokens = (
        select(RefreshToken.token_hash)
        .where(RefreshToken.session_id.in_(session_ids), RefreshToken.revoked_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash.in_(live_tokens.scalar_subquery()))
        .values(revoked_at=now)
    )
    live_sessions = (
        select(LoginSession.id)
        .where(LoginSession.id.in_(session_ids), LoginSession.revoked_at.is_(None))
        .order_by(LoginSession.id)
        .with_for_update()
    )
    result = await db.execute(
        update(LoginSession)
        .where(LoginSession.id.in_(live_sessions.scalar_subquery()))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(LoginSession.id)
    )
    return [row[0] for row in result.all()]


async def live_session_ids_of_user(
    db: AsyncSession, user_id: str, created_before: datetime
) -> list[str]:
    result = await db.execute(
        select(LoginSession.id).where(
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.created_at <= created_before,
        )
    )
    return list(result.scalars().all())


async def live_sessions_of_user(
    db: AsyncSession, user_id: str, *, used_since: datetime, ending_after: datetime, limit: int
) -> list[LoginSession]:
    """The user's sessions not revoked, used (logged in or refreshed) since `used_since` and
    whose absolute end is after `ending_after`, newest first."""
    result = await db.execute(
        select(LoginSession)
        .where(
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.last_used_at >= used_since,
            LoginSession.expires_at > ending_after,
        )
        .order_by(LoginSession.created_at.desc(), LoginSession.id.desc())
        .limit(limit)
    )
    return list(result.scalars().all())
