"""A service's hottest routes answered in plain ASGI, in front of FastAPI's router.

FastAPI's routing, dependency resolution, exception middleware and response validation cost more
CPU than a hot route's own work (measured with py-spy: about half of a `GET /users/me` and of an
introspection). `HotRoute` is an innermost middleware: inside request ids, metrics and tracing,
so the request is logged, counted (under the route's own label) and traced as any other; in front
of FastAPI's exception middleware and router. For its one method and path it calls `answer`,
which runs the route's own code (its checks, its queries) and returns the response the route
returns; an `AppError` is rendered as the error handlers render it (`AppError.to_response`), so
is a database outage (`common.db.DatabaseUnavailable`, 503), and anything else goes on to the
outer error handling as from any route. Every other request goes on to FastAPI untouched, and so
does one whose `answer` returns None (a request it leaves to FastAPI's own handling, e.g. a body
that does not validate): FastAPI then reads the body `answer` read, as it came. The route stays
declared in FastAPI for the OpenAPI document, and a test per hot route pins that both answer
alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.db import outage_answer
from common.errors import AppError

Answer = Callable[[Request], Awaitable[Response | None]]


class HotRoute:
    def __init__(
        self, app: ASGIApp, *, method: str, path: str, route: BaseRoute, answer: Answer
    ) -> None:
        self.app = app
        self.method = method
        self.path = path
        self.route = route
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != self.method or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        scope["route"] = self.route  # as FastAPI's router sets it (the metrics label)
        try:
            response = await self.answer(request)
        except AppError as error:
            response = error.to_response(instance=request.url.path)
        except Exception as error:
            outage = outage_answer(error, request.url.path)
            if outage is None:
                raise
            response = outage.to_response(instance=request.url.path)
        if response is None:
            await self.app(scope, _replaying(await request.body(), receive), send)
            return
        await response(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app after `body` was read from it: the body once, then `receive`'s."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
