"""Liveness and readiness.

`/health` answers 200 while the process runs. `/ready` runs the service's checks (each a named
coroutine: the database, Redis, the broker) concurrently with a timeout and answers 503 naming the
ones that failed; it also fails while the process is draining after SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.errors import problem

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


async def readiness(checks: Mapping[str, ReadinessCheck], draining: bool) -> Response:
    if draining:
        return problem(503, "Service Unavailable", "The process is shutting down.")
    names = list(checks)
    results = await asyncio.gather(*(_run(checks[name]) for name in names))
    failed = {name: error for name, error in zip(names, results, strict=True) if error}
    if failed:
        return problem(
            503,
            "Service Unavailable",
            "Dependencies not ready: " + ", ".join(sorted(failed)),
            extra={"checks": {name: failed.get(name, "ok") for name in names}},
        )
    return JSONResponse({"status": "ready", "checks": dict.fromkeys(names, "ok")})


async def ready_endpoint(request: Request) -> Response:
    checks: Mapping[str, ReadinessCheck] = getattr(request.app.state, "readiness_checks", {})
    return await readiness(checks, getattr(request.app.state, "draining", False))
