"""The second factors' tables: a TOTP credential per user, its recovery codes, and the tickets
(`mfa_token`) that carry a password login on to its second step."""

from __future__ import annotations

from datetime import datetime

from common.db import UTCDateTime
from sqlalchemy import (
    BigInteger,
    Identity,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import Base


class TotpCredential(Base):
    """One row per user who ever started an enrolment. `secret` (sealed, `auth.mfa.crypto`) set:
    MFA is on. `pending_secret`: an enrolment not yet confirmed, which changes nothing until it
    is; starting again replaces it."""

    __tablename__ = "mfa_totp"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The last RFC 6238 time step accepted: a code of this step or an earlier one is refused, so
    # no code works twice. In the database, so that every replica agrees.
    last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    pending_secret: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RecoveryCode(Base):
    """One unused recovery code: only its HMAC is stored; using it deletes the row."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MfaTicket(Base):
    """A password login waiting for its second factor. Only the SHA-256 of the `mfa_token` is
    stored; the token names its user (`<user id>.<random>`), and the hash covers both parts."""

    __tablename__ = "mfa_tickets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Codes tried with it; the fifth wrong one voids it.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    client_ip: Mapped[str | None] = mapped_column(String(64), default=None)
