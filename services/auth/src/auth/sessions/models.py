"""Sessions (one per login) and the refresh tokens descended from it (its family)."""

from __future__ import annotations

from datetime import datetime

from common.db import UTCDateTime
from sqlalchemy import BigInteger, ForeignKey, Identity, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import Base


class LoginSession(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Absolute end: no refresh after this, however active the session is.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Indexed: a restore of the Redis markers reads the sessions revoked in the last half hour.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    # Where the session was last used (the login, then each refresh), as the gateway saw the
    # client: what the owner's session list shows (API.md §10).
    client_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(256), default=None)
    # When the login proved a credential and how (RFC 8176 values, space-separated): every
    # access token of the session carries them as `auth_time` and `amr`; refreshes keep them.
    auth_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    amr: Mapped[str | None] = mapped_column(String(64), default=None)
    # OpenID Connect sessions (API.md §13): the scope granted to the client (None: a first-party
    # login, which carries every permission of the account), and the single sign-on session the
    # authorization code came from (end-session ends every session of it).
    scope: Mapped[str | None] = mapped_column(Text, default=None)
    sso_session_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)


class RefreshToken(Base):
    """One refresh token; only its SHA-256 is stored. Used once: `used_at` marks the rotation."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Idle end: the token is refused after this even though the session still runs.
    idle_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
