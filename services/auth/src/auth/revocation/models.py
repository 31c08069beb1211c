"""What auth's database keeps so that every revocation marker can be rebuilt (the DB is the
source of truth; Redis only caches it). Revoked sessions are `sessions.revoked_at`; the per-user
"not before" times live here."""

from __future__ import annotations

from datetime import datetime

from common.db import UTCDateTime
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from auth.models import Base


class UserNotBefore(Base):
    """The user's access tokens issued before `not_before` are refused (kept exact; the Redis
    marker holds it in whole seconds, see `common.revocation`). Only ever moves forward."""

    __tablename__ = "user_not_before"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
