"""A circuit breaker per upstream: after `failures` consecutive connection failures or timeouts
the circuit opens and requests fail fast (503) for `open_seconds`; then one probe is let through,
and its outcome closes the circuit or opens it again.

While the circuit is open, `probe` (the upstream's health, asked by the gateway itself) runs
every `probe_every` seconds, and the first success closes the circuit at once: an upstream that
comes back is served again within a fraction of a second, not after the rest of `open_seconds`.
No client request is spent on a probe that way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.metrics import CIRCUIT_OPEN

logger = logging.getLogger("gatehouse.gateway.breaker")


class CircuitBreaker:
    def __init__(
        self,
        upstream: str,
        failures: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        probe: Callable[[], Awaitable[bool]] | None = None,
        probe_every: float = 0.25,
    ) -> None:
        self.upstream = upstream
        self.probe = probe
        self.probe_every = probe_every
        self._probing_task: asyncio.Task[None] | None = None
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

    def allow(self, probe: bool = True) -> bool:
        """Whether a request may go to the upstream. `probe` False: the request cannot be the
        half-open probe (its body is still arriving from the client, whose pace says nothing
        about the upstream), so it goes only while the circuit is closed."""
        state = self.state
        if state == "closed":
            return True
        if probe and state == "half-open" and not self.probing:
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
            self._start_probing()

    def release(self) -> None:
        """The probe ended without telling anything (e.g. the client went away)."""
        self.probing = False

    def _start_probing(self) -> None:
        if self.probe is None or (self._probing_task and not self._probing_task.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a unit test on a fake clock): the time-based probe only
        self._probing_task = loop.create_task(self._probe_while_open())

    async def _probe_while_open(self) -> None:
        assert self.probe is not None
        while self.opened_at is not None:
            await asyncio.sleep(self.probe_every)
            if self.opened_at is None:
                return
            try:
                healthy = await self.probe()
            except Exception:  # a probe that breaks tells only that the upstream is not back
                healthy = False
            if healthy and self.opened_at is not None:
                self.success()
                return

    async def aclose(self) -> None:
        task, self._probing_task = self._probing_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
