"""users' security events (`common.audit`): each names the user id where known. Never a token,
secret or password."""

from __future__ import annotations

import logging

from common.audit import record, security_events_counter

SECURITY_EVENTS = security_events_counter("users")


def audit(
    event: str,
    *,
    user_id: str | None = None,
    level: int = logging.INFO,
    **details: str | int | None,
) -> None:
    record(event, SECURITY_EVENTS, level=level, user_id=user_id, **details)
