"""`GET /api/v1/users/me`, the platform's hottest route, answered in plain ASGI.

FastAPI's routing, dependency resolution, exception middleware and response validation cost more
CPU than the route's own work (measured with py-spy: about half of each request). `MeRoute` is the
innermost middleware: inside request ids, metrics and tracing, so the request is logged, counted
(under the route's own label) and traced as any other; in front of FastAPI's exception middleware
and router. It runs the route's own code, `common.security.current_principal` then
`users.accounts.router.read_me`, so the checks are the route's; writes the `UserRead` answer as
FastAPI writes it (the same bytes, the same headers); and renders a refusal as the error handlers
do (`AppError.to_response`). Every other request, and every other method on this path, goes on to
FastAPI untouched. The route stays declared in FastAPI for the OpenAPI document.
"""

from __future__ import annotations

from common.db import get_database
from common.errors import AppError
from common.security import current_principal
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from users.accounts.router import read_me, router
from users.accounts.schemas import UserRead

ME_PATH = "/api/v1/users/me"
_USER_READ = TypeAdapter(UserRead)
_JSON = b"application/json"
ROUTE: BaseRoute = next(
    route for route in router.routes if getattr(route, "endpoint", None) is read_me
)


class MeRoute:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != ME_PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        scope["route"] = ROUTE  # as FastAPI's router sets it (the metrics label)
        try:
            principal = await current_principal(request, None)
            body = _USER_READ.dump_json(await read_me(principal, get_database(request)))
        except AppError as error:
            await error.to_response(instance=request.url.path)(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body)), (b"content-type", _JSON)],
            }
        )
        await send({"type": "http.response.body", "body": body})
