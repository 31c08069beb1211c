"""One row per event the notifier acted on: the idempotency record and the delivery record at once.

`event_id` is unique, so a redelivered event finds the row written by the first delivery.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from common.db import UTCDateTime
from common.events import utcnow
from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from notifier.models import Base


class DeliveryStatus(StrEnum):
    SENDING = "sending"  # committed before the SMTP send starts
    SENT = "sent"
    FAILED = "failed"  # a retryable failure: the next delivery of the event tries again
    REJECTED = "rejected"  # the SMTP server refused for good (5xx): dead-lettered
    UNCERTAIN = "uncertain"  # redelivered while "sending": the process died mid-send; not resent


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
