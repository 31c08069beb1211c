"""RFC 6749 token endpoint and RFC 7009 revocation, with RFC 6749 §5.2 error bodies."""

from __future__ import annotations

from typing import Any

from common.db import CommitThenAnswer, DbDep, get_database
from common.errors import problem_responses
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from auth.clients.dependencies import ClientsDep
from auth.clients.models import RegisteredClient
from auth.clients.repository import registered_client
from auth.clients.service import ClientPolicy, Clients, authenticate_service_client
from auth.oauth.errors import NO_STORE, OAuthError, invalid_client, invalid_request
from auth.oauth.forms import OAuthForm, presented_client, read_form, unsupported
from auth.oauth.schemas import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OidcTokens,
    RefreshTokenGrant,
    RevocationRequest,
    Revoked,
    ServiceToken,
    form_body,
    oauth_errors,
)
from auth.oauth.token_status import TokenInspector
from auth.oidc.dependencies import OidcServiceDep
from auth.oidc.service import CodeRefused
from auth.sessions.dependencies import SessionServiceDep
from auth.sessions.exceptions import RefreshRefused
from auth.sessions.schemas import TokenPair
from auth.sessions.service import RefreshingClient
from auth.signing import AccessTokenSigner
from auth.state import auth_state

router = APIRouter(prefix="/api/v1/auth", tags=["oauth"])

OAUTH_ERRORS = oauth_errors(400, 401)


async def _authenticated_client(
    request: Request, form: OAuthForm, clients: Clients
) -> ClientPolicy | RegisteredClient | None:
    """The client whose credentials the request presents: a service client, or a confidential
    OpenID Connect client; None when it presents none; `invalid_client` when they are wrong."""
    presented = presented_client(request, form)
    if presented is None:
        return None
    policy = await authenticate_service_client(
        get_database(request), presented.client_id, presented.secret
    )
    if policy is not None:
        return policy
    registered = await clients.authenticate_registered(presented.client_id, presented.secret)
    if registered is None:
        raise invalid_client()
    return registered


async def _code_grant_client(
    form: OAuthForm, caller: ClientPolicy | RegisteredClient | None, db: DbDep
) -> RegisteredClient:
    """The client redeeming a code: a confidential one authenticated, a public one by its
    `client_id` alone (RFC 6749 §4.1.3; PKCE stands in for the secret it cannot keep)."""
    if isinstance(caller, ClientPolicy):
        raise OAuthError("unauthorized_client", "Service clients may only use client_credentials.")
    named = form.get("client_id")
    if caller is not None:
        if named is not None and named != caller.client_id:
            raise invalid_request("client_id does not match the authenticated client.")
        return caller
    if named is None:
        raise invalid_client("client_id is required.")
    client = await registered_client(db, named)
    if client is None:
        raise invalid_client()
    if client.is_confidential:
        raise invalid_client("This client must authenticate (client_secret_basic).")
    return client


def _refreshing_client(
    form: OAuthForm, caller: ClientPolicy | RegisteredClient | None
) -> RefreshingClient | None:
    if isinstance(caller, ClientPolicy):
        raise OAuthError("unauthorized_client", "Service clients may only use client_credentials.")
    if caller is not None:
        return RefreshingClient(caller.client_id, authenticated=True)
    named = form.get("client_id")
    return RefreshingClient(named, authenticated=False) if named is not None else None


def _client_credentials_grant(
    form: OAuthForm, client: ClientPolicy | None, signer: AccessTokenSigner
) -> dict[str, Any]:
    if client is None:
        raise invalid_client("client_credentials needs client authentication.")
    audience, resource = form.get("audience"), form.get("resource")
    if audience and resource and audience != resource:
        raise OAuthError("invalid_target", "audience and resource name different services.")
    target = audience or resource
    if target is None:
        if len(client.audiences) != 1:
            raise invalid_request("The 'audience' parameter is required.")
        target = next(iter(client.audiences))
    if target not in client.audiences:
        raise OAuthError("invalid_target", "The client may not request tokens for this audience.")
    requested = frozenset((form.get("scope") or "").split())
    scopes = requested or client.scopes  # RFC 6749 §3.3: no scope asked, the client's default
    if not scopes or not scopes <= client.scopes:
        raise OAuthError("invalid_scope", "The requested scope is not allowed for this client.")
    signed = signer.service_token(client.client_id, target, scopes)
    return {
        "access_token": signed.token,
        "token_type": "bearer",
        "expires_in": signed.expires_in,
        "scope": " ".join(sorted(scopes)),
    }


@router.post(
    "/token",
    response_model=OidcTokens | TokenPair | ServiceToken,
    responses={**OAUTH_ERRORS, **problem_responses(503)},
    openapi_extra=form_body(AuthorizationCodeGrant, RefreshTokenGrant, ClientCredentialsGrant),
)
async def token(
    request: Request,
    db: DbDep,
    clients: ClientsDep,
    sessions: SessionServiceDep,
    oidc: OidcServiceDep,
) -> JSONResponse:
    """OAuth 2.0 token endpoint (form-encoded). `grant_type=authorization_code` redeems an
    OpenID Connect code (PKCE `code_verifier`; a public client names itself with `client_id`,
    a confidential one authenticates with HTTP Basic) for a `TokenPair` plus `id_token`;
    `grant_type=refresh_token` rotates a refresh token (a client's own only);
    `grant_type=client_credentials` issues a service token to a service client (HTTP Basic, or
    `client_id`/`client_secret` fields) for the service named by `audience` (or `resource`)."""
    form = await read_form(request)
    grant_type = form.require("grant_type")
    client = await _authenticated_client(request, form, clients)
    if grant_type == "client_credentials":
        if isinstance(client, RegisteredClient):
            raise OAuthError(
                "unauthorized_client", "OpenID Connect clients may not use client_credentials."
            )
        body = _client_credentials_grant(form, client, auth_state(request).signer)
        return JSONResponse(body, headers=NO_STORE)
    if grant_type == "authorization_code":
        relying_party = await _code_grant_client(form, client, db)
        try:
            tokens = await oidc.redeem_code(
                relying_party,
                form.require("code"),
                form.get("redirect_uri"),
                form.get("code_verifier"),
                sessions,
            )
        except CodeRefused as exc:
            # The code stays spent, and a reused code's revocation must outlive the refusal.
            raise CommitThenAnswer(OAuthError("invalid_grant", exc.description)) from exc
        return JSONResponse(tokens, headers=NO_STORE)
    if grant_type == "refresh_token":
        refreshing = _refreshing_client(form, client)
        refresh_token = form.require("refresh_token")
        try:
            pair = await sessions.refresh(refresh_token, refreshing)
        except RefreshRefused as exc:
            # The revocation it caused must outlive the refusal.
            raise CommitThenAnswer(OAuthError(exc.oauth_error, exc.detail or "")) from exc
        return JSONResponse(pair.model_dump(), headers=NO_STORE)
    raise unsupported(
        "Supported grant types: authorization_code, refresh_token, client_credentials."
    )


@router.post(
    "/revoke",
    response_model=Revoked,
    responses=OAUTH_ERRORS,
    openapi_extra=form_body(RevocationRequest),
)
async def revoke(
    request: Request, clients: ClientsDep, sessions: SessionServiceDep
) -> JSONResponse:
    """RFC 7009 revocation (form `token`, optional `token_type_hint`). A refresh token or an
    access token ends the session it belongs to. Unknown, expired or already revoked tokens get
    the same 200: the answer says nothing about the token."""
    form = await read_form(request)
    await _authenticated_client(request, form, clients)
    value = form.require("token")
    inspector: TokenInspector = auth_state(request).token_inspector
    revoked = False
    if form.get("token_type_hint") != "access_token":
        revoked = await sessions.revoke_refresh_token(value)
    if not revoked:
        claims = await inspector.verify_access_token(value)
        if claims is not None and claims.session_id is not None:
            await sessions.revoke_sessions([claims.session_id], "revoked", user_id=claims.subject)
            revoked = True
    if not revoked and form.get("token_type_hint") == "access_token":
        await sessions.revoke_refresh_token(value)
    return JSONResponse({}, headers=NO_STORE)
