"""A circuit breaker per upstream: after `failures` consecutive connection failures or timeouts
the circuit opens and requests fail fast (503) for `open_seconds`; then one probe is let through,
and its outcome closes the circuit or opens it again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.metrics import CIRCUIT_OPEN

logger = logging.getLogger("gatehouse.gateway.breaker")


class CircuitBreaker:
    def __init__(
        self,
        upstream: str,
        failures: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.threshold = failures
        self.open_seconds = open_seconds
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False
        CIRCUIT_OPEN.labels(upstream).set(0)

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.open_seconds else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        if self.opened_at is not None:
            logger.warning("circuit to %s closed", self.upstream)
            CIRCUIT_OPEN.labels(self.upstream).set(0)
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            if self.opened_at is None or self.probing:
                logger.error("circuit to %s open after %d failures", self.upstream, self.failures)
            self.opened_at = self.clock()
            self.probing = False
            CIRCUIT_OPEN.labels(self.upstream).set(1)

    def release(self) -> None:
        """The probe ended without telling anything (e.g. the client went away)."""
        self.probing = False
