"""Password hashing is a bounded resource (API.md §11): a fixed number of workers, a bounded queue
per kind, 503 + Retry-After at once when it is full, logins served while registrations queue,
and callers that waited too long dropped before their hash starts.

The hashes are real bcrypt (at the suite's low cost); a gate in front of each one holds the
workers busy for as long as a test needs."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from users.passwords.hashing import PasswordHasher, hash_password_sync

from .support import PASSWORD, TEST_ROUNDS, UsersHarness

VERIFY = "/internal/v1/credentials/verify"
T = TypeVar("T")


class GatedHasher(PasswordHasher):
    """The real hasher; each new hash (registrations, password changes) waits for the test to
    open the gate once for it. Checks of a password (logins) run as soon as they get a worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Semaphore(0)
        self.started = 0
        self._lock = threading.Lock()

    def compute(self, work: Callable[..., T], *args: object) -> T:
        with self._lock:
            self.started += 1
        if work is hash_password_sync:
            self.gate.acquire(timeout=30)
        return super().compute(work, *args)

    def open(self, times: int = 1) -> None:
        self.gate.release(times)


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10.0
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


def registration() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "email": f"queued.{tag}@example.org",
        "username": f"queued_{tag}",
        "password": PASSWORD,
        "full_name": "Queued",
    }


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


async def test_a_full_queue_answers_503_at_once_and_logins_pass_queued_registrations(
    users: UsersHarness,
) -> None:
    existing = await users.register()
    hasher = GatedHasher(TEST_ROUNDS, 2, queue_size=2, max_wait=30)
    users.replace_state(hasher=hasher)
    try:
        # Two registrations hold both workers, two more fill the registrations' queue.
        held = [
            asyncio.create_task(users.client.post("/api/v1/users/", json=registration()))
            for _ in range(4)
        ]
        await until(lambda: hasher.started == 2 and hasher.waiting("account") == 2)

        refused, seconds = await timed(users.client.post("/api/v1/users/", json=registration()))
        assert refused.status_code == 503, refused.text
        # At once, not after the 30 s wait: a bound far below it, and above any pause (a full
        # garbage collection late in the suite) the process may take meanwhile.
        assert seconds < 5, seconds
        assert refused.headers["retry-after"] == str(hasher.retry_after)
        assert refused.headers["content-type"] == "application/problem+json"

        login = asyncio.create_task(
            users.client.post(
                VERIFY,
                json={"login": existing["username"], "password": PASSWORD},
                headers=users.service_bearer("credentials:verify"),
            )
        )
        await until(lambda: hasher.waiting("login") == 1)
        hasher.open()  # one registration finishes: its worker goes to the login, not the queue
        answer = await login
        assert answer.status_code == 200, answer.text
        # The login passed the registrations that were queued before it.
        assert hasher.waiting("account") >= 1
        assert sum(task.done() for task in held) <= 1  # at most the one let through
    finally:
        hasher.open(10)
    assert [(await task).status_code for task in held] == [201] * 4


async def test_a_caller_that_waited_too_long_is_dropped_before_its_hash(
    users: UsersHarness,
) -> None:
    existing = await users.register()
    hasher = GatedHasher(TEST_ROUNDS, 1, queue_size=4, max_wait=0.2)
    users.replace_state(hasher=hasher)
    body = {"login": existing["username"], "password": PASSWORD}
    headers = users.service_bearer("credentials:verify")
    try:
        holding = asyncio.create_task(users.client.post("/api/v1/users/", json=registration()))
        await until(lambda: hasher.started == 1)
        dropped, seconds = await timed(users.client.post(VERIFY, json=body, headers=headers))
        assert dropped.status_code == 503
        assert dropped.headers["retry-after"] == "1"
        assert 0.2 <= seconds < 1.0, seconds
        hasher.open()
        assert (await holding).status_code == 201
        assert hasher.started == 1  # the dropped login's hash never ran
    finally:
        hasher.open(10)
    assert (await users.client.post(VERIFY, json=body, headers=headers)).status_code == 200


async def test_a_caller_that_goes_away_frees_its_place(users: UsersHarness) -> None:
    hasher = GatedHasher(TEST_ROUNDS, 1, queue_size=1, max_wait=30)
    try:
        running = asyncio.create_task(hasher.hash(PASSWORD, kind="account"))
        await until(lambda: hasher.started == 1)
        waiting = asyncio.create_task(hasher.hash(PASSWORD, kind="account"))
        await until(lambda: hasher.waiting("account") == 1)
        waiting.cancel()
        await until(lambda: hasher.waiting("account") == 0)
        hasher.open(2)
        assert (await running).startswith("$2b$")
        # The worker is free again: the next hash starts at once.
        assert (await hasher.hash(PASSWORD, kind="account")).startswith("$2b$")
        assert hasher.started == 2
    finally:
        hasher.open(10)
        hasher.close()
