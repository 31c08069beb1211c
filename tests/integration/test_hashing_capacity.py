"""Password hashing is a bounded resource, on the wire (API.md §11): with the real processes at
bcrypt cost 12, a flood answers 503 + Retry-After instead of queueing every caller behind
everyone's hashes, and a login still gets through while registrations flood.

Before, every caller queued: the login waited behind the whole flood and, like the flood's own
tail, ended in auth's 5-second timeout for users (a 503 without Retry-After). The time the refusals
take here is mostly this machine's load on three processes; users' own answer takes milliseconds
(services/users/tests/test_hashing_queue.py measures it)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable

import httpx

from .support import PASSWORD, login, new_account, register

FLOOD = 30  # far more than 2 workers + 8 waiting per kind (the defaults)
USERS_TIMEOUT = 5.0  # auth's wait for users: a refusal from the queue comes well before it


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


def refusals(results: list[tuple[httpx.Response, float]]) -> list[float]:
    refused = [(r, seconds) for r, seconds in results if r.status_code == 503]
    for response, _ in refused:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"].isdigit()
    return sorted(seconds for _, seconds in refused)


async def test_a_registration_flood_is_refused_at_once_and_a_login_gets_through(
    gateway: httpx.AsyncClient,
) -> None:
    account = new_account()
    await register(gateway, account)
    flood = [
        asyncio.create_task(timed(gateway.post("/api/v1/users/", json=new_account())))
        for _ in range(FLOOD)
    ]
    await asyncio.sleep(1.0)  # the registrations hold the workers and fill their queue
    answer, seconds = await timed(login(gateway, account["username"], PASSWORD))
    if answer.status_code == 503:
        # On this shared machine one cost-12 hash can take seconds of wall time, longer than the
        # login may wait for the worker it is next in line for: then it is told when to come
        # back (never a timeout), and it does while the flood still runs.
        assert answer.headers["retry-after"].isdigit(), answer.headers
        await asyncio.sleep(int(answer.headers["retry-after"]))
        answer, again = await timed(login(gateway, account["username"], PASSWORD))
        seconds += again
    results = await asyncio.gather(*flood)
    assert answer.status_code == 200, (answer.status_code, seconds)
    refused = refusals(results)
    assert refused, [r.status_code for r, _ in results]
    assert {r.status_code for r, _ in results} <= {201, 503}
    print(  # the measurement, shown with -s
        f"\nregistration flood: {len(refused)}/{FLOOD} refused, 503 median "
        f"{statistics.median(refused) * 1000:.0f} ms, max {refused[-1] * 1000:.0f} ms; "
        f"login during the flood {seconds * 1000:.0f} ms"
    )
    assert statistics.median(refused) < USERS_TIMEOUT  # the queue refused, not a timeout


async def test_a_login_flood_is_refused_at_once(gateway: httpx.AsyncClient) -> None:
    """One client sending logins for random names: beyond what can be hashed soon, each gets a
    fast 503 + Retry-After instead of a 5-second wait that ends in a timeout."""
    flood = [
        asyncio.create_task(
            timed(login(gateway, f"nobody_{uuid.uuid4().hex[:10]}", "a wrong password 123"))
        )
        for _ in range(FLOOD)
    ]
    results = await asyncio.gather(*flood)
    assert {r.status_code for r, _ in results} <= {401, 503}
    refused = refusals(results)
    assert refused
    print(
        f"\nlogin flood: {len(refused)}/{FLOOD} refused, 503 median "
        f"{statistics.median(refused) * 1000:.0f} ms, max {refused[-1] * 1000:.0f} ms"
    )
    assert statistics.median(refused) < USERS_TIMEOUT
