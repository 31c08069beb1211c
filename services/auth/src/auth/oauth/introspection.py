"""RFC 7662 token introspection for services (never routed by the gateway)."""

from __future__ import annotations

from typing import Any

from common.db import Database, DatabaseDep
from common.errors import BadRequest, Forbidden, Unauthorized
from common.security import internal_verifier, verify_bearer
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from auth.clients.service import authenticate_service_client
from auth.oauth.errors import NO_STORE, OAuthError
from auth.oauth.forms import OAuthForm, presented_client, read_form
from auth.oauth.token_status import INACTIVE, TokenInspector, introspect_refresh_token
from auth.state import auth_state

router = APIRouter(prefix="/internal/v1", tags=["internal"])

INTROSPECT_SCOPE = "tokens:introspect"


async def _authenticate_caller(request: Request, form: OAuthForm, database: Database) -> None:
    """A service client (HTTP Basic) or a service token for audience "auth", either with the
    `tokens:introspect` scope."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        claims = await verify_bearer(request, internal_verifier(request))
        if INTROSPECT_SCOPE not in claims.scopes or claims.session_id is not None:
            raise Forbidden(f"This needs a service token with the '{INTROSPECT_SCOPE}' scope.")
        return
    try:
        presented = presented_client(request, form)
    except OAuthError as exc:
        raise Unauthorized("Client authentication failed.") from exc
    if presented is None:
        raise Unauthorized("Client credentials or a service token are required.")
    policy = await authenticate_service_client(database, presented.client_id, presented.secret)
    if policy is None:
        raise Unauthorized("Client authentication failed.")
    if INTROSPECT_SCOPE not in policy.scopes:
        raise Forbidden(f"This client lacks the '{INTROSPECT_SCOPE}' scope.")


@router.post(
    "/introspect",
    responses={401: {"description": "caller not authenticated"}, 403: {"description": "scope"}},
)
async def introspect(request: Request, database: DatabaseDep) -> JSONResponse:
    """Is this token active? Form `token`, optional `token_type_hint`. Bad, expired, revoked
    or unknown tokens all answer `{"active": false}` and nothing else. Reads only, each one
    statement outside any transaction (`Database.read_rows`): rows as committed when read."""
    try:
        form = await read_form(request)
    except OAuthError:
        form = None
    await _authenticate_caller(request, form or OAuthForm({}), database)
    value = form.get("token") if form is not None else None
    if value is None:
        raise BadRequest("A form-encoded 'token' parameter is required.")
    inspector: TokenInspector = auth_state(request).token_inspector
    answer: dict[str, Any] | None = None
    if form is not None and form.get("token_type_hint") != "access_token":
        answer = await introspect_refresh_token(value, database, auth_state(request).clock())
    if answer is None:
        answer = await inspector.introspect_access_token(value, database)
    if answer is None and form is not None and form.get("token_type_hint") == "access_token":
        answer = await introspect_refresh_token(value, database, auth_state(request).clock())
    return JSONResponse(answer or INACTIVE, headers=NO_STORE)
