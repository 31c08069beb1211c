"""Clients: service clients (the callers of the client_credentials grant: gateway, notifier, ...)
and registered OpenID Connect clients (the relying parties of the authorization code flow)."""

from __future__ import annotations

from datetime import datetime

from common.db import UTCDateTime
from sqlalchemy import JSON, Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import Base


class ServiceClient(Base):
    __tablename__ = "service_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # SHA-256 hex of the secret (see auth.clients.service for why a fast hash is right here).
    secret_hash: Mapped[str] = mapped_column(String(64))
    allowed_audiences: Mapped[str] = mapped_column(Text)  # space-separated
    allowed_scopes: Mapped[str] = mapped_column(Text)  # space-separated
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RegisteredClient(Base):
    """An OpenID Connect relying party (API.md §13): signs its users in with the authorization
    code flow. Public clients (browser and native apps) hold no secret; a confidential one's
    secret is stored as SHA-256, like a service client's."""

    __tablename__ = "oidc_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    client_type: Mapped[str] = mapped_column(String(16))  # "public" | "confidential"
    secret_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # Exact strings: an authorization request's redirect_uri must equal one of them.
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    # First-party clients skip the consent page.
    first_party: Mapped[bool] = mapped_column(Boolean)
    scopes: Mapped[str] = mapped_column(Text)  # space-separated: what it may ask for
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def is_confidential(self) -> bool:
        return self.client_type == "confidential"

    @property
    def allowed_scopes(self) -> frozenset[str]:
        return frozenset(self.scopes.split())
