"""auth's hottest routes answered in plain ASGI (`common.hot`): `POST /internal/v1/introspect`
(every service's token check), `GET /.well-known/jwks.json` (every verifier's key set) and
`POST /api/v1/auth/refresh` (every client's, every few minutes: `auth.sessions.hot`). Each
runs the route's own endpoint, called as FastAPI calls it (introspection's one dependency, the
database, is the app's), so the answer is the route's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.db import get_database
from common.hot import Answer, HotRoute
from fastapi import APIRouter
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from auth.keys import router as keys
from auth.oauth import introspection
from auth.sessions import hot as sessions

INTROSPECT_PATH = "/internal/v1/introspect"
JWKS_PATH = "/.well-known/jwks.json"


def _route_of(router: APIRouter, endpoint: Callable[..., Any]) -> BaseRoute:
    return next(route for route in router.routes if getattr(route, "endpoint", None) is endpoint)


async def answer_introspection(request: Request) -> Response:
    return await introspection.introspect(request, get_database(request))


def _hot(method: str, path: str, route: BaseRoute, answer: Answer) -> Middleware:
    return Middleware(HotRoute, method=method, path=path, route=route, answer=answer)


def hot_routes() -> list[Middleware]:
    return [
        _hot(
            "POST",
            INTROSPECT_PATH,
            _route_of(introspection.router, introspection.introspect),
            answer_introspection,
        ),
        _hot("GET", JWKS_PATH, _route_of(keys.router, keys.jwks), keys.jwks),
        _hot("POST", sessions.REFRESH_PATH, sessions.ROUTE, sessions.answer_refresh),
    ]
