"""Reset link tokens: 256 random bits, kept only as their SHA-256.

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

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from users.models import PasswordResetToken, User

TOKEN_BYTES = 32
# token_urlsafe(32): 43 characters of the URL-safe base64 alphabet, no padding.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


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
