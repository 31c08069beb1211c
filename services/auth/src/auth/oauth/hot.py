"""`POST /internal/v1/introspect`, auth's hottest route for services, answered in plain ASGI
(`common.hot`): the route's own code, `auth.oauth.introspection.introspect`, called as FastAPI
calls it (its one dependency, the database, is the app's), so the answer is the route's."""

from __future__ import annotations

from common.db import get_database
from common.hot import HotRoute
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from auth.oauth.introspection import introspect, router

INTROSPECT_PATH = "/internal/v1/introspect"
ROUTE: BaseRoute = next(
    route for route in router.routes if getattr(route, "endpoint", None) is introspect
)


async def answer_introspection(request: Request) -> Response:
    return await introspect(request, get_database(request))


def introspection_route() -> Middleware:
    return Middleware(
        HotRoute, method="POST", path=INTROSPECT_PATH, route=ROUTE, answer=answer_introspection
    )
