"""Signing keys: `pending → active → retired`, the private half encrypted at rest."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from common.db import UTCDateTime
from sqlalchemy import Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import Base


class KeyStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRED = "retired"


class SigningKey(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one active key, whatever several replicas do at once.
        Index(
            "uq_signing_keys_one_active",
            "status",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    public_jwk: Mapped[str] = mapped_column(Text)  # JSON: kty, n, e (no private parts)
    # AES-256-GCM(KEK, nonce, PKCS#8 DER of the private key, AAD = kid).
    private_key_nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    private_key_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
