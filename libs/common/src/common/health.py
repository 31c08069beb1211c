"""Liveness and readiness.

`/health` answers 200 while the process runs. `/ready` runs the service's checks (each a named
coroutine: the database, Redis, the broker) concurrently with a timeout and answers 503 naming the
ones that failed; it also fails while the process is draining after SIGTERM.

Some dependencies are ones a service is built to serve without (docs/ARCHITECTURE.md §3: users
writes on into its outbox while RabbitMQ is down; the gateway falls back to per-process rate
limits while Redis is down). Failing readiness for those would take every replica out of the load
balancer at once and turn a degraded service into an outage, so they are `degradable` checks:
reported in the body (`"status": "degraded"`, the failure named) but answered with 200.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.errors import problem
from common.state import runtime_of

ReadinessCheck = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_SECONDS = 2.0


async def health_endpoint(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _run(check: ReadinessCheck) -> str | None:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # any failure means not ready; the type says which
        return type(exc).__name__
    return None


async def readiness(
    checks: Mapping[str, ReadinessCheck],
    draining: bool,
    degradable: Mapping[str, ReadinessCheck] | None = None,
) -> Response:
    if draining:
        return problem(503, "Service Unavailable", "The process is shutting down.")
    every = {**checks, **(degradable or {})}
    names = list(every)
    results = await asyncio.gather(*(_run(every[name]) for name in names))
    failed = {name: error for name, error in zip(names, results, strict=True) if error}
    report = {name: failed.get(name, "ok") for name in names}
    required = sorted(name for name in failed if name in checks)
    if required:
        return problem(
            503,
            "Service Unavailable",
            "Dependencies not ready: " + ", ".join(required),
            extra={"checks": report},
        )
    return JSONResponse({"status": "degraded" if failed else "ready", "checks": report})


async def ready_endpoint(request: Request) -> Response:
    runtime = runtime_of(request.app)
    return await readiness(runtime.readiness_checks, runtime.draining, runtime.degradable_checks)
