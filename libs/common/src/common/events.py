"""Account events: the envelope of API.md §6 and the outbox row that carries it.

A service writes an `OutboxMixin` row in the same transaction as the change it describes; the relay
(`common.outbox`) publishes pending rows with publisher confirms and marks them sent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import JSON, BigInteger, Identity, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from common.db import UTCDateTime

EXCHANGE = "gatehouse.events"
EventType = Literal[
    "user.registered",
    "user.updated",
    "user.password_changed",
    "user.deactivated",
    "user.roles_changed",
    "user.password_reset_requested",
    "user.password_reset",
    # auth's own (its outbox): the second factor turned on or off, a recovery code used.
    "user.mfa_enabled",
    "user.mfa_disabled",
    "user.mfa_recovery_code_used",
    "user.email_verification_requested",
    "user.email_verified",
    # users': a lockout (its notice carries a reset link).
    "user.locked_out",
]
# Events that carry a clear link token (API.md §12): their outbox row is deleted as soon as the
# broker confirmed it, instead of being kept as sent until the retention prunes it.
SECRET_EVENT_TYPES: frozenset[str] = frozenset(
    {"user.password_reset_requested", "user.email_verification_requested", "user.locked_out"}
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: EventType
    # With its offset (users writes aware UTC): consumers compare it with their clocks.
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    version: Literal[1] = 1
    data: dict[str, Any]


class OutboxMixin:
    """Columns of an outbox table; a service declares `class OutboxEvent(OutboxMixin, Base)`."""

    __tablename__ = "outbox"

    # Ordered by this sequence, not by time: the relay publishes in commit-insert order.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    # The request that caused the event: published as the AMQP correlation id, so the consumer's
    # log lines carry the same request id as the gateway's and the service's.
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)

    @classmethod
    def for_envelope(cls, envelope: Envelope, request_id: str | None = None) -> dict[str, Any]:
        """Column values for a row carrying `envelope` (caused by request `request_id`)."""
        return {
            "event_id": envelope.id,
            "event_type": envelope.type,
            "payload": envelope.model_dump(mode="json"),
            "created_at": envelope.occurred_at,
            "request_id": request_id,
        }
