"""Builds the per-request `SessionService` from what the lifespan put on `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from auth.db import SessionDep
from auth.sessions.service import SessionService


def client_ip(request: Request) -> str | None:
    """For the audit log: the client as the gateway saw it (the gateway overwrites
    X-Forwarded-For and is auth's only public caller), else the socket peer."""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    if forwarded:
        return forwarded[:64]
    return request.client.host if request.client else None


async def session_service(request: Request, session: SessionDep) -> SessionService:
    state = request.app.state
    return SessionService(
        session=session,
        redis=state.redis,
        signer=state.signer,
        users=state.users,
        settings=state.settings,
        clock=state.clock,
        client_ip=client_ip(request),
    )


SessionServiceDep = Annotated[SessionService, Depends(session_service)]
