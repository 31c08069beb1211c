"""The declarative base of auth's tables (signing keys, sessions, refresh tokens, clients, second
factors) and auth's outbox."""

from __future__ import annotations

from common.db import new_metadata
from common.events import OutboxMixin
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    metadata = new_metadata()


class OutboxEvent(OutboxMixin, Base):
    """auth's outbox (`common.outbox`): the MFA notices (API.md §12) leave through it, written in
    the transaction of the change they tell of."""
