"""All SQL about authorization codes, single sign-on sessions and consents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.oidc.models import AuthorizationCode, Consent, SsoSession
from auth.sessions.models import LoginSession


async def add_code(db: AsyncSession, code: AuthorizationCode) -> None:
    db.add(code)
    await db.flush()


async def claim_code(db: AsyncSession, code_hash: str, now: datetime) -> AuthorizationCode | None:
    """Mark the code used, atomically: of concurrent redemptions exactly one gets it back (the
    others wait on the row and then find it used)."""
    result = await db.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == code_hash, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
        .returning(AuthorizationCode)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def find_code(db: AsyncSession, code_hash: str) -> AuthorizationCode | None:
    result = await db.execute(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash)
    )
    return result.scalar_one_or_none()


async def record_code_session(db: AsyncSession, code_hash: str, session_id: str) -> None:
    await db.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == code_hash)
        .values(session_id=session_id)
    )


async def delete_codes_expired_before(db: AsyncSession, moment: datetime) -> None:
    await db.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at < moment))


async def delete_sso_sessions_expired_before(db: AsyncSession, moment: datetime) -> None:
    await db.execute(delete(SsoSession).where(SsoSession.expires_at < moment))


async def add_sso_session(db: AsyncSession, sso: SsoSession) -> None:
    db.add(sso)
    await db.flush()


async def find_sso_session(db: AsyncSession, token_hash: str) -> SsoSession | None:
    result = await db.execute(select(SsoSession).where(SsoSession.token_hash == token_hash))
    return result.scalar_one_or_none()


async def get_sso_session(db: AsyncSession, sso_id: str) -> SsoSession | None:
    return await db.get(SsoSession, sso_id, populate_existing=True)


async def renew_sso_session(
    db: AsyncSession, sso_id: str, token_hash: str, now: datetime, amr: str
) -> None:
    await db.execute(
        update(SsoSession)
        .where(SsoSession.id == sso_id)
        .values(token_hash=token_hash, auth_time=now, amr=amr)
    )


async def revoke_sso_session(db: AsyncSession, sso_id: str, now: datetime) -> None:
    await db.execute(
        update(SsoSession)
        .where(SsoSession.id == sso_id, SsoSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def live_session_ids_of_sso(db: AsyncSession, sso_id: str) -> list[str]:
    result = await db.execute(
        select(LoginSession.id).where(
            LoginSession.sso_session_id == sso_id, LoginSession.revoked_at.is_(None)
        )
    )
    return list(result.scalars().all())


async def get_consent(db: AsyncSession, user_id: str, client_id: str) -> Consent | None:
    return await db.get(Consent, (user_id, client_id), populate_existing=True)


async def save_consent(db: AsyncSession, consent: Consent) -> None:
    await db.merge(consent)
    await db.flush()
