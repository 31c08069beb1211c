"""Security events as structured log records on the `gatehouse.audit` logger, one shape for
every service: `audit_event` names the event, the fields say who and where (user id, session
id, client IP), the JSON formatter adds the request id. Never a token, secret or password.

Each service counts its events under its own metric (`gatehouse_<service>_security_events_total`)
and calls `record` through a small `audit()` of its own that names its fields.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from common.logs import request_id_var

audit_logger = logging.getLogger("gatehouse.audit")


def security_events_counter(service: str) -> Counter:
    return Counter(
        f"gatehouse_{service}_security_events_total",
        "Security events recorded in the audit log, by event.",
        ["event"],
    )


def record(
    event: str, counter: Counter, *, level: int = logging.INFO, **fields: str | int | None
) -> None:
    """Log `event` with the fields that are set, and count it."""
    values = {"audit_event": event, **fields, "request_id": request_id_var.get()}
    counter.labels(event).inc()
    audit_logger.log(level, event, extra={k: v for k, v in values.items() if v is not None})
