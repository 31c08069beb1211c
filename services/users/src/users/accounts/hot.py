"""`GET /api/v1/users/me`, the platform's hottest route, answered in plain ASGI (`common.hot`).

`me_route` is the `HotRoute` for it: the route's own code, `common.security.current_principal`
then `users.accounts.router.read_me`, with the `UserRead` answer written as FastAPI writes it
(the same bytes, the same headers).
"""

from __future__ import annotations

from common.db import get_database
from common.hot import HotRoute
from common.security import current_principal
from pydantic import TypeAdapter
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from users.accounts.router import read_me, router
from users.accounts.schemas import UserRead

ME_PATH = "/api/v1/users/me"
_USER_READ = TypeAdapter(UserRead)
ROUTE: BaseRoute = next(
    route for route in router.routes if getattr(route, "endpoint", None) is read_me
)


async def answer_me(request: Request) -> Response:
    principal = await current_principal(request, None)
    body = _USER_READ.dump_json(await read_me(principal, get_database(request)))
    return Response(body, media_type="application/json")


def me_route() -> Middleware:
    return Middleware(HotRoute, method="GET", path=ME_PATH, route=ROUTE, answer=answer_me)
