"""Security events as structured log records on the `gatehouse.audit` logger.

Each record names the event and carries the user id, session id, client IP and request id (the
JSON formatter adds the request id from its context variable). Never a token, secret or password.
"""

from __future__ import annotations

import logging

from common.logs import request_id_var
from prometheus_client import Counter

audit_logger = logging.getLogger("gatehouse.audit")
SECURITY_EVENTS = Counter(
    "gatehouse_auth_security_events_total",
    "Security events recorded in the audit log, by event.",
    ["event"],
)


def audit(
    event: str,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    client_ip: str | None = None,
    client_id: str | None = None,
    level: int = logging.INFO,
    **details: str | int | None,
) -> None:
    fields: dict[str, str | int | None] = {
        "audit_event": event,
        "user_id": user_id,
        "session_id": session_id,
        "client_ip": client_ip,
        "client_id": client_id,
        "request_id": request_id_var.get(),
        **details,
    }
    SECURITY_EVENTS.labels(event).inc()
    audit_logger.log(level, event, extra={k: v for k, v in fields.items() if v is not None})
