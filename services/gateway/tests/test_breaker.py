"""The circuit breaker's states on a fake clock: closed → open → half-open (one probe) → closed,
or open again when the probe fails."""

from __future__ import annotations

from gateway.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker("users-test", failures=3, open_seconds=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "closed"
    breaker.success()  # a success in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now += 10
    assert breaker.state == "half-open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else still fails fast
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_a_failed_probe_opens_the_circuit_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker("auth-test", failures=1, open_seconds=5, clock=clock)
    breaker.failure()
    clock.now += 5
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_a_probe_that_tells_nothing_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker("users-test", failures=1, open_seconds=1, clock=clock)
    breaker.failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()  # e.g. the client went away
    assert breaker.allow()


def test_a_request_still_receiving_its_body_is_never_the_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker("users-test", failures=1, open_seconds=1, clock=clock)
    breaker.failure()
    clock.now += 1
    assert not breaker.allow(probe=False)  # a streamed upload: only while closed
    assert breaker.allow()  # the slot is still free for a request whose body is in hand
    breaker.success()
    assert breaker.allow(probe=False)
