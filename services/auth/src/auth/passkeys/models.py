"""Passkeys (WebAuthn credentials) and the one-use challenges of their registration."""

from __future__ import annotations

from datetime import datetime

from common.db import UTCDateTime
from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import Base


class Passkey(Base):
    """A registered WebAuthn credential. Only public material: the credential id and its COSE
    public key (nothing here signs in without the authenticator's private key)."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(64))
    # The authenticator's model (AAGUID; all zeros when it does not say) and its transports.
    aaguid: Mapped[str] = mapped_column(String(36))
    transports: Mapped[str | None] = mapped_column(String(128), default=None)
    backed_up: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PasskeyChallenge(Base):
    """A registration challenge: only its SHA-256, for one user, used once, for 5 minutes."""

    __tablename__ = "webauthn_challenges"

    challenge_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
