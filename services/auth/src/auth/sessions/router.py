"""First-party session endpoints: login, refresh, logout."""

from __future__ import annotations

from typing import Annotated, Any

from common.db import CommitThenAnswer
from common.errors import problem_responses
from common.forms import FORM_TYPE
from common.security import CurrentPrincipal
from fastapi import APIRouter, Body, Response, status

from auth.sessions.dependencies import LoginFormDep, SessionServiceDep
from auth.sessions.exceptions import RefreshRefused
from auth.sessions.schemas import LoginForm, LogoutRequest, RefreshRequest, TokenPair

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
    responses=problem_responses(401, 413, 415, 422, 503),
    openapi_extra=LOGIN_BODY,
)
async def login(
    form: LoginFormDep,
    sessions: SessionServiceDep,
    response: Response,
) -> TokenPair:
    """Log in with a username **or** email and a password; starts a session and returns an
    access token (15 minutes) and a refresh token (rotated at every use)."""
    response.headers.update(NO_STORE)
    return await sessions.login(form.username, form.password)


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
