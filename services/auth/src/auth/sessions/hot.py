"""`POST /api/v1/auth/refresh`, every client's call every few minutes, answered in plain ASGI
(`common.hot`): the route's own work, `SessionService.refresh`, in the request's transaction as
`get_db` runs it (`common.db.request_transaction`: the refusals that revoke are committed before
the 401), with the same `SessionService` its FastAPI dependencies build and the same answer. A
request whose body FastAPI would refuse or read otherwise (not JSON, not a `RefreshRequest`) is
left to FastAPI, which answers its 422 itself."""

from __future__ import annotations

import json

from common.db import CommitThenAnswer, get_database, request_transaction
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from auth.sessions.dependencies import session_service
from auth.sessions.exceptions import RefreshRefused
from auth.sessions.router import NO_STORE, refresh, router
from auth.sessions.schemas import RefreshRequest

REFRESH_PATH = "/api/v1/auth/refresh"
ROUTE: BaseRoute = next(
    route for route in router.routes if getattr(route, "endpoint", None) is refresh
)


async def _refresh_request(request: Request) -> RefreshRequest | None:
    """The body as FastAPI reads it when it is JSON and a valid `RefreshRequest`; else None."""
    content_type = request.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        return RefreshRequest.model_validate(json.loads(await request.body()))
    except (ValueError, ValidationError):  # not JSON (nor UTF-8), or not a refresh request
        return None


async def answer_refresh(request: Request) -> Response | None:
    body = await _refresh_request(request)
    if body is None:
        return None
    async with request_transaction(get_database(request)) as db:
        sessions = await session_service(request, db)
        try:
            pair = await sessions.refresh(body.refresh_token)
        except RefreshRefused as refused:
            raise CommitThenAnswer(refused) from None  # the revocation it caused must stand
    response = JSONResponse(pair.model_dump(mode="json"))
    response.headers.update(NO_STORE)
    return response
