"""The OpenID Connect provider's state: authorization codes, single sign-on sessions, consents."""

from __future__ import annotations

from datetime import datetime

from common.db import UTCDateTime
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import Base


class SsoSession(Base):
    """The browser's sign-in at Gatehouse (the `__Host-` cookie holds a random token; only its
    SHA-256 is kept): while it lives, another client's authorization request signs in without the
    form. Every session a code of it opened carries its id, so end-session ends them together."""

    __tablename__ = "sso_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[str] = mapped_column(String(64))  # RFC 8176, space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Indexed: each new sign-on session prunes those long past their end (OidcService.start_sso).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class AuthorizationCode(Base):
    """One authorization code (only its SHA-256 is kept): 60 seconds, used once. `session_id` is
    the session its redemption opened, which a second redemption revokes (RFC 6749 §4.1.2)."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(String(64))
    sso_session_id: Mapped[str | None] = mapped_column(String(36), default=None)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text, default=None)
    code_challenge: Mapped[str] = mapped_column(String(128))  # S256 only
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    session_id: Mapped[str | None] = mapped_column(String(36), default=None)


class Consent(Base):
    """The scopes a user allowed a third-party client; asked again only for a scope not in it."""

    __tablename__ = "consents"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oidc_clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(Text)  # space-separated
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
