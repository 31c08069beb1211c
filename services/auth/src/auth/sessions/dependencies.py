"""Builds the per-request `SessionService` from what the lifespan built (`AuthState`)."""

from __future__ import annotations

import re
from typing import Annotated

from common.db import DbDep
from common.errors import AppError, ValidationFailed
from common.forms import FormRefused, parse_form
from fastapi import Depends, Request
from pydantic import ValidationError

from auth.sessions.management import SessionManager
from auth.sessions.schemas import LoginForm
from auth.sessions.service import SessionRevoker, SessionService
from auth.state import auth_state

# Stored with the session for its owner to recognise it; longer agents are cut (they are
# client-written, and no browser's reaches this).
MAX_USER_AGENT_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def client_ip(request: Request) -> str | None:
    """For the audit log and the session list: the client as the gateway saw it (the gateway
    overwrites X-Forwarded-For with the one address it believes, after its trusted proxies, and
    is auth's only public caller), else the socket peer."""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    if forwarded:
        return forwarded[:64]
    return request.client.host if request.client else None


def user_agent(request: Request) -> str | None:
    """The client's User-Agent as the gateway passed it on, on one line and bounded."""
    value = _CONTROL.sub(" ", request.headers.get("user-agent", "")).strip()
    return value[:MAX_USER_AGENT_LENGTH] or None


async def session_service(request: Request, db: DbDep) -> SessionService:
    state = auth_state(request)
    return SessionService(
        db=db,
        redis=state.redis,
        signer=state.signer,
        users=state.users,
        settings=state.settings,
        clock=state.clock,
        mfa_box=state.mfa_box,
        client_ip=client_ip(request),
        user_agent=user_agent(request),
    )


SessionServiceDep = Annotated[SessionService, Depends(session_service)]


async def session_manager(request: Request, db: DbDep) -> SessionManager:
    state = auth_state(request)
    revoker = SessionRevoker(db, state.redis, state.settings, state.clock, client_ip(request))
    return SessionManager(db, revoker, state.settings, state.clock)


SessionManagerDep = Annotated[SessionManager, Depends(session_manager)]


class FormNotAccepted(AppError):
    def __init__(self, refused: FormRefused) -> None:
        super().__init__(refused.detail, errors=refused.errors or None)
        self.status = refused.status
        self.title = {413: "Content Too Large", 415: "Unsupported Media Type"}.get(
            refused.status, "Unprocessable Content"
        )


async def login_form(request: Request) -> LoginForm:
    """The login form read strictly, by the reader the gateway keys its login limits with
    (`common.forms`): a body it would read otherwise (a repeated field, multipart) is refused."""
    try:
        values = parse_form(await request.body(), request.headers.get("content-type"))
    except FormRefused as refused:
        raise FormNotAccepted(refused) from None
    try:
        return LoginForm.model_validate(values)
    except ValidationError as exc:
        raise ValidationFailed.of(exc) from None


LoginFormDep = Annotated[LoginForm, Depends(login_form)]
