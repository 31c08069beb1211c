"""Link tokens (reset and verification links): 256 random bits, kept only as their SHA-256.

A slow, salted hash (bcrypt) guards low-entropy secrets such as passwords against guessing from a
stolen table. A token of 256 random bits cannot be guessed, hash or no hash, so one SHA-256 is
enough for a stolen table to reveal nothing usable, and it lets the token be found by an indexed
equality lookup (a salted hash could not be looked up).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from users.accounts import repository
from users.models import EmailVerificationToken, PasswordResetToken, User

TOKEN_BYTES = 32
# token_urlsafe(32): 43 characters of the URL-safe base64 alphabet, no padding.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
Link = TypeVar("Link", PasswordResetToken, EmailVerificationToken)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def well_formed(token: str) -> bool:
    """Whether `token` could be one we issued (anything else is refused before any lookup)."""
    return _TOKEN_SHAPE.fullmatch(token) is not None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


async def open_link(db: AsyncSession, user: User, now: datetime, ttl: timedelta) -> str:
    """A new reset link token for `user` (its hash stored), voiding the account's older links:
    the forgot-password link, and the link of the lockout notice (`users.credentials`)."""
    token = new_token()
    await db.execute(delete(PasswordResetToken).where(PasswordResetToken.user_id == user.id))
    db.add(
        PasswordResetToken(
            token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=now + ttl
        )
    )
    await db.flush()
    return token


async def take_link(
    db: AsyncSession, table: type[Link], token: str, now: datetime
) -> tuple[User, Link] | None:
    """Use the link `token` of `table`: its row is deleted and returned with its account (row
    locked), or None when the token is malformed, unknown or expired, or its account is gone or
    deactivated (the caller answers each of these with one 400)."""
    if not well_formed(token):
        return None
    # Deleting the row takes it: of two requests with one token, only one finds it.
    link = await db.scalar(
        delete(table).where(table.token_hash == token_hash(token)).returning(table)
    )
    if link is None or link.expires_at <= now:  # a UTCDateTime column: aware on SQLite too
        return None
    user = await repository.by_id(db, link.user_id, lock=True)
    if user is None or not user.is_active:
        return None
    return user, link


async def link_is_open(
    db: AsyncSession,
    table: type[PasswordResetToken] | type[EmailVerificationToken],
    token: str,
    now: datetime,
) -> bool:
    """Whether `token` is an open, unexpired link of `table` (a page's first look: nothing is
    used, as mail scanners fetch links)."""
    if not well_formed(token):
        return False
    expires_at = await db.scalar(
        select(table.expires_at).where(table.token_hash == token_hash(token))
    )
    return expires_at is not None and expires_at > now
