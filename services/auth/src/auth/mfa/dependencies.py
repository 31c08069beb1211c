"""Builds the per-request `SecondFactors`, and reads the second login step's body strictly."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from common.errors import ValidationFailed
from common.forms import MFA_LOGIN_BYTES, FormRefused, parse_json_object
from fastapi import Depends, Request
from pydantic import ValidationError

from auth.mfa.schemas import MfaLogin
from auth.mfa.service import SecondFactors
from auth.sessions.dependencies import FormNotAccepted, client_ip
from auth.state import auth_state


async def second_factors(request: Request, db: DbDep) -> SecondFactors:
    state = auth_state(request)
    return SecondFactors(
        db=db,
        box=state.mfa_box,
        users=state.users,
        settings=state.settings,
        clock=state.clock,
        client_ip=client_ip(request),
    )


SecondFactorsDep = Annotated[SecondFactors, Depends(second_factors)]


async def mfa_login_body(request: Request) -> MfaLogin:
    """The body read by the reader the gateway keys the login limits with
    (`common.forms.parse_json_object`): what it would read otherwise (a repeated key) is refused
    here too, so the account the gateway counted is the account whose ticket is checked."""
    try:
        values = parse_json_object(
            await request.body(), request.headers.get("content-type"), max_bytes=MFA_LOGIN_BYTES
        )
    except FormRefused as refused:
        raise FormNotAccepted(refused) from None
    try:
        return MfaLogin.model_validate(values, strict=True)
    except ValidationError as exc:
        raise ValidationFailed.of(exc) from None


MfaLoginDep = Annotated[MfaLogin, Depends(mfa_login_body)]
