"""The gateway's Prometheus metrics (beside common's per-service HTTP metrics)."""

from __future__ import annotations

from common.metrics import RequestTally
from prometheus_client import Counter, Gauge

REQUESTS = RequestTally(
    (
        "gatehouse_gateway_requests_total",
        "Requests answered by the gateway, by route, upstream and status.",
        ["route", "upstream", "status"],
    ),
    (
        "gatehouse_gateway_request_duration_seconds",
        "Time from request to the end of the response, by route.",
        ["route"],
    ),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
UPSTREAM_ERRORS = Counter(
    "gatehouse_gateway_upstream_errors_total",
    "Upstream failures, by upstream and kind (connect, timeout, circuit_open, pool_busy).",
    ["upstream", "kind"],
)
RATE_LIMITED = Counter(
    "gatehouse_gateway_rate_limited_total", "Requests refused with 429, by limit.", ["limit"]
)
REVOKED = Counter("gatehouse_gateway_revoked_total", "Requests with a revoked token refused.")
FALLBACKS = Counter(
    "gatehouse_gateway_redis_fallbacks_total",
    "Requests decided without Redis, by rule "
    "(fail_closed, general_local_limit, login_local_limit, revocation_incomplete).",
    ["rule"],
)
CIRCUIT_OPEN = Gauge(
    "gatehouse_gateway_circuit_open", "1 while an upstream's circuit is open.", ["upstream"]
)
