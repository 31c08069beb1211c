"""Service clients: the callers of the client_credentials grant (gateway, notifier, ...)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import Base


class ServiceClient(Base):
    __tablename__ = "service_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # SHA-256 hex of the secret (see auth.clients.service for why a fast hash is right here).
    secret_hash: Mapped[str] = mapped_column(String(64))
    allowed_audiences: Mapped[str] = mapped_column(Text)  # space-separated
    allowed_scopes: Mapped[str] = mapped_column(Text)  # space-separated
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
