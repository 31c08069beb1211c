"""Builds the per-request `SessionService` from what the lifespan put on `app.state`."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from common.errors import AppError, ValidationFailed
from common.forms import FormRefused, parse_form
from fastapi import Depends, Request
from pydantic import ValidationError

from auth.sessions.schemas import LoginForm
from auth.sessions.service import SessionService


def client_ip(request: Request) -> str | None:
    """For the audit log: the client as the gateway saw it (the gateway overwrites
    X-Forwarded-For and is auth's only public caller), else the socket peer."""
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    if forwarded:
        return forwarded[:64]
    return request.client.host if request.client else None


async def session_service(request: Request, db: DbDep) -> SessionService:
    state = request.app.state
    return SessionService(
        db=db,
        redis=state.redis,
        signer=state.signer,
        users=state.users,
        settings=state.settings,
        clock=state.clock,
        client_ip=client_ip(request),
    )


SessionServiceDep = Annotated[SessionService, Depends(session_service)]


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
        errors = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "body",
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        raise ValidationFailed(errors) from None


LoginFormDep = Annotated[LoginForm, Depends(login_form)]
