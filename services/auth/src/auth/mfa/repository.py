"""All SQL about second factors. The checks that must have exactly one winner across replicas
(a TOTP time step, a recovery code, a ticket's attempts) are single conditional statements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.mfa.models import MfaTicket, RecoveryCode, TotpCredential


@dataclass(frozen=True, slots=True)
class TicketAttempt:
    user_id: str
    attempts: int


async def totp_of(db: AsyncSession, user_id: str) -> TotpCredential | None:
    return await db.get(TotpCredential, user_id, populate_existing=True)


async def save_pending_secret(db: AsyncSession, user_id: str, sealed: bytes, now: datetime) -> None:
    credential = await totp_of(db, user_id)
    if credential is None:
        db.add(TotpCredential(user_id=user_id, pending_secret=sealed, pending_since=now))
    else:
        credential.pending_secret, credential.pending_since = sealed, now
    await db.flush()


async def activate_pending_secret(
    db: AsyncSession, user_id: str, pending: bytes, step: int, now: datetime
) -> bool:
    """The pending secret becomes the credential, with the confirming code's step spent. Only
    if the pending secret is still the one checked (a concurrent restart replaced it: False)."""
    result = await db.execute(
        update(TotpCredential)
        .where(TotpCredential.user_id == user_id, TotpCredential.pending_secret == pending)
        .values(
            secret=pending, enabled_at=now, last_step=step, pending_secret=None, pending_since=None
        )
        .returning(TotpCredential.user_id)
    )
    return result.one_or_none() is not None


async def claim_time_step(db: AsyncSession, user_id: str, secret: bytes, step: int) -> bool:
    """Spend `step` for the user: true for exactly one of any number of concurrent claims of it
    (or of an earlier step), on any replica — the row's update is the arbiter."""
    result = await db.execute(
        update(TotpCredential)
        .where(
            TotpCredential.user_id == user_id,
            TotpCredential.secret == secret,
            (TotpCredential.last_step.is_(None)) | (TotpCredential.last_step < step),
        )
        .values(last_step=step)
        .returning(TotpCredential.user_id)
    )
    return result.one_or_none() is not None


async def disable_totp(db: AsyncSession, user_id: str) -> bool:
    """MFA off: the credential row goes (pending enrolment too). True if it was on."""
    result = await db.execute(
        delete(TotpCredential)
        .where(TotpCredential.user_id == user_id)
        .returning(TotpCredential.secret)
    )
    row = result.one_or_none()
    return row is not None and row[0] is not None


async def replace_recovery_codes(
    db: AsyncSession, user_id: str, code_hashes: Sequence[str], now: datetime
) -> None:
    await delete_recovery_codes(db, user_id)
    db.add_all(
        RecoveryCode(user_id=user_id, code_hash=code_hash, created_at=now)
        for code_hash in code_hashes
    )
    await db.flush()


async def delete_recovery_codes(db: AsyncSession, user_id: str) -> None:
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


async def use_recovery_code(db: AsyncSession, user_id: str, code_hash: str) -> bool:
    """Delete the code's row: of concurrent uses, exactly one gets it back."""
    result = await db.execute(
        delete(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.code_hash == code_hash)
        .returning(RecoveryCode.id)
    )
    return result.one_or_none() is not None


async def recovery_codes_left(db: AsyncSession, user_id: str) -> int:
    result = await db.execute(
        select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user_id)
    )
    return int(result.scalar_one())


async def add_ticket(db: AsyncSession, ticket: MfaTicket) -> None:
    db.add(ticket)
    await db.flush()


async def prune_tickets(db: AsyncSession, before: datetime) -> None:
    await db.execute(delete(MfaTicket).where(MfaTicket.expires_at < before))


async def spend_ticket_attempt(
    db: AsyncSession, token_hash: str, now: datetime, max_attempts: int
) -> TicketAttempt | None:
    """Count one code tried with the ticket, before it is checked: the row lock makes
    concurrent attempts take turns, so no more than `max_attempts` codes are ever checked.
    None when the ticket is unknown, used, expired or spent."""
    result = await db.execute(
        update(MfaTicket)
        .where(
            MfaTicket.token_hash == token_hash,
            MfaTicket.used_at.is_(None),
            MfaTicket.expires_at > now,
            MfaTicket.attempts < max_attempts,
        )
        .values(attempts=MfaTicket.attempts + 1)
        .returning(MfaTicket.user_id, MfaTicket.attempts)
    )
    row = result.one_or_none()
    return None if row is None else TicketAttempt(row[0], row[1])


async def live_ticket_user(
    db: AsyncSession, token_hash: str, now: datetime, max_attempts: int
) -> str | None:
    """The user of a ticket that is neither used, expired nor spent."""
    return await db.scalar(
        select(MfaTicket.user_id).where(
            MfaTicket.token_hash == token_hash,
            MfaTicket.used_at.is_(None),
            MfaTicket.expires_at > now,
            MfaTicket.attempts < max_attempts,
        )
    )


async def use_ticket(db: AsyncSession, token_hash: str, now: datetime) -> datetime:
    """Mark the ticket used (its row is locked by this transaction's attempt); when it was
    opened, i.e. when the password was checked."""
    result = await db.execute(
        update(MfaTicket)
        .where(MfaTicket.token_hash == token_hash)
        .values(used_at=now)
        .returning(MfaTicket.created_at)
    )
    opened: datetime = result.scalar_one()
    return opened
