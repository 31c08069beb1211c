"""Passkey endpoints (API.md §13): register (options, then the browser's answer), list, remove."""

from __future__ import annotations

import uuid

from common.errors import problem_responses
from common.security import CurrentPrincipal, RecentPrincipal
from fastapi import APIRouter, Response, status

from auth.passkeys.dependencies import PasskeysDep
from auth.passkeys.schemas import PasskeyOptions, PasskeyRead, PasskeyRegistration

router = APIRouter(prefix="/api/v1/auth/mfa/webauthn", tags=["mfa"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/register/options", responses=problem_responses(401, 503))
async def registration_options(
    principal: RecentPrincipal, passkeys: PasskeysDep, response: Response
) -> PasskeyOptions:
    """Options for `navigator.credentials.create()`: a new challenge (one use, 5 minutes) and
    the passkeys already registered, excluded. Needs a recent login."""
    response.headers.update(NO_STORE)
    return await passkeys.registration_options(str(principal.user_id))


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 409, 422, 503),
)
async def register(
    body: PasskeyRegistration, principal: RecentPrincipal, passkeys: PasskeysDep
) -> PasskeyRead:
    """Register the passkey the browser created for the options' challenge (verified: the
    challenge, the relying party and the origin). Needs a recent login."""
    return await passkeys.register(str(principal.user_id), body.credential, body.name)


@router.get("", responses=problem_responses(401))
async def list_passkeys(principal: CurrentPrincipal, passkeys: PasskeysDep) -> list[PasskeyRead]:
    """The caller's passkeys, newest first."""
    return await passkeys.list_passkeys(str(principal.user_id))


# `{passkey_id:uuid}`: passkey ids are UUIDs, so `/register` is not taken for one (schemathesis:
# OPTIONS of /register listed DELETE in its `Allow`); any other segment is a 404.
@router.delete(
    "/{passkey_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404),
)
async def remove(
    passkey_id: uuid.UUID, principal: RecentPrincipal, passkeys: PasskeysDep
) -> Response:
    """Remove one of the caller's passkeys (someone else's, or an unknown id: 404). Needs a
    recent login."""
    await passkeys.remove(str(principal.user_id), str(passkey_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
