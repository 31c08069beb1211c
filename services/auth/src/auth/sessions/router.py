"""First-party session endpoints: login, refresh, logout; the caller's sessions (API.md §10)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from common.db import CommitThenAnswer
from common.errors import problem_responses
from common.forms import FORM_TYPE
from common.security import CurrentPrincipal, Principal, ensure_permission
from fastapi import APIRouter, Body, Query, Response, status

from auth.mfa.exceptions import MfaRequired
from auth.sessions.dependencies import LoginFormDep, SessionManagerDep, SessionServiceDep
from auth.sessions.exceptions import RefreshRefused
from auth.sessions.schemas import (
    LoginForm,
    LogoutRequest,
    RefreshRequest,
    SessionRead,
    TokenPair,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
UNAUTHORIZED = problem_responses(401)


# The form is read by `login_form` (common.forms), not by FastAPI, so the document declares it.
LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {FORM_TYPE: {"schema": LoginForm.model_json_schema()}},
        "required": True,
    }
}


@router.post(
    "/login",
    responses=problem_responses(401, 403, 413, 415, 422, 503),
    openapi_extra=LOGIN_BODY,
)
async def login(
    form: LoginFormDep,
    sessions: SessionServiceDep,
    response: Response,
) -> TokenPair:
    """Log in with a username **or** email and a password; starts a session and returns an
    access token (15 minutes) and a refresh token (rotated at every use). With
    REQUIRE_VERIFIED_EMAIL, the right password of an unverified address is a 403
    (`type` ending in `/email-not-verified`)."""
    response.headers.update(NO_STORE)
    try:
        return await sessions.login(form.username, form.password)
    except MfaRequired as required:
        raise CommitThenAnswer(required) from None  # its ticket must be stored


@router.post("/refresh", responses=UNAUTHORIZED)
async def refresh(
    body: RefreshRequest, sessions: SessionServiceDep, response: Response
) -> TokenPair:
    """Exchange a refresh token for a new pair. Each refresh token works once: presenting one
    that was already used or revoked ends its whole session."""
    response.headers.update(NO_STORE)
    try:
        return await sessions.refresh(body.refresh_token)
    except RefreshRefused as refused:
        raise CommitThenAnswer(refused) from None  # the revocation it caused must stand


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED)
async def logout(
    principal: CurrentPrincipal,
    sessions: SessionServiceDep,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """End the caller's session: its refresh tokens stop working and its access tokens are
    refused from the next request on. A refresh token in the body (of the same user) ends its
    session too."""
    user_id = str(principal.user_id)
    if principal.session_id is not None:
        await sessions.revoke_sessions([principal.session_id], "logout", user_id=user_id)
    if body is not None and body.refresh_token is not None:
        await sessions.revoke_refresh_token(body.refresh_token, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# An admin's view of another user's sessions.
MANAGE_PERMISSION = "users:manage"
UserIdQuery = Annotated[
    uuid.UUID | None,
    Query(description="Another user's sessions (needs `users:manage`); default: the caller's."),
]


def sessions_owner(principal: Principal, user_id: uuid.UUID | None) -> str:
    """Whose sessions the request is about: the caller's, or with `user_id` (an admin only,
    else 403) that user's."""
    if user_id is None:
        return str(principal.user_id)
    ensure_permission(principal, MANAGE_PERMISSION)
    return str(user_id)


@router.get("/sessions", responses=problem_responses(401, 403))
async def list_sessions(
    principal: CurrentPrincipal, sessions: SessionManagerDep, user_id: UserIdQuery = None
) -> list[SessionRead]:
    """The live sessions (each a login and its refreshes), newest first, at most 100; `current`
    marks the one of the token making the request."""
    owner = sessions_owner(principal, user_id)
    return await sessions.live_sessions(owner, principal.session_id)


@router.delete(
    "/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 503),
)
async def end_other_sessions(
    principal: CurrentPrincipal, sessions: SessionManagerDep, user_id: UserIdQuery = None
) -> Response:
    """End every session but the current one: their refresh tokens stop working and the gateway
    refuses their access tokens from the next request. With `user_id` (an admin), every session
    of that user."""
    owner = sessions_owner(principal, user_id)
    await sessions.end_other_sessions(owner, principal.session_id, actor_id=str(principal.user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# `{session_id:uuid}`: only a UUID names a session; any other segment is a 404 like an unknown id.
@router.delete(
    "/sessions/{session_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 503),
)
async def end_session(
    session_id: uuid.UUID,
    principal: CurrentPrincipal,
    sessions: SessionManagerDep,
    user_id: UserIdQuery = None,
) -> Response:
    """End one of the caller's sessions (or, with `user_id`, an admin ends one of that user's):
    its refresh tokens stop working and the gateway refuses its access tokens from the next
    request. Someone else's session id is a 404."""
    owner = sessions_owner(principal, user_id)
    await sessions.end_session(owner, str(session_id), actor_id=str(principal.user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
