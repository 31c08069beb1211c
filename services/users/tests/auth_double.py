"""An in-test stand-in for the two auth endpoints users calls: the client_credentials grant (for
the `users` client, with the internal secret) and ending a user's sessions with that token."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse


@dataclass
class EndedSessions:
    user_id: str
    body: dict[str, Any]
    seen: Any  # what `on_end` observed when the call arrived


@dataclass
class AuthDouble:
    secret: str
    calls: list[EndedSessions] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    down: bool = False
    # Called with the user id when an end-sessions call arrives (to look at users' database).
    on_end: Callable[[str], Awaitable[Any]] | None = None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/v1/auth/token")
        async def token(request: Request) -> JSONResponse:
            if self.down:
                return JSONResponse({"title": "down"}, status_code=503)
            form = await request.form()
            expected = "Basic " + base64.b64encode(f"users:{self.secret}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            assert (form["grant_type"], form["audience"], form["scope"]) == (
                "client_credentials",
                "auth",
                "sessions:end",
            )
            issued = secrets.token_urlsafe(16)
            self.tokens.add(issued)
            return JSONResponse({"access_token": issued, "expires_in": 300})

        @app.post("/internal/v1/users/{user_id}/sessions/end")
        async def end(user_id: str, request: Request) -> JSONResponse:
            if self.down:
                return JSONResponse({"title": "down"}, status_code=503)
            presented = request.headers.get("authorization", "").removeprefix("Bearer ")
            if presented not in self.tokens:
                return JSONResponse({"title": "Unauthorized"}, status_code=401)
            seen = await self.on_end(user_id) if self.on_end is not None else None
            self.calls.append(EndedSessions(user_id, await request.json(), seen))
            return JSONResponse({"revoked": 1})

        return app
