"""Who is calling, and may they: the `CurrentPrincipal` and `require_permission` dependencies.

Every service verifies the bearer token itself (the gateway's check is not trusted): the verifier
lives on `app.state.token_verifier`, built in the lifespan. Identity headers are never read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from common.errors import Forbidden, Unauthorized
from common.tokens import AccessClaims, InvalidToken, JwksUnavailable, TokenVerifier

LOGIN_PATH = "/api/v1/auth/login"

# Declares the OAuth2 password flow in OpenAPI (Swagger's Authorize button); we do the checks.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=LOGIN_PATH, auto_error=False)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    session_id: str | None
    scopes: frozenset[str]
    roles: tuple[str, ...]
    claims: AccessClaims

    def can(self, permission: str) -> bool:
        return permission in self.scopes


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "The Authorization header must be 'Bearer <token>'.", token_presented=True
        )
    return token.strip()


async def verify_bearer(request: Request, verifier: TokenVerifier) -> AccessClaims:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("A bearer token is required.")
    try:
        return await verifier.verify(token)
    except JwksUnavailable as exc:
        raise Unauthorized("The token cannot be checked right now.", token_presented=True) from exc
    except InvalidToken as exc:
        raise Unauthorized("The token is invalid or expired.", token_presented=True) from exc


async def current_principal(
    request: Request, _token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    claims = await verify_bearer(request, request.app.state.token_verifier)
    if claims.session_id is None:
        # Service tokens (client_credentials) have no user session and act for no user.
        raise Unauthorized("A user token is required.", token_presented=True)
    try:
        user_id = UUID(claims.subject)
    except ValueError as exc:
        raise Unauthorized("The token is invalid or expired.", token_presented=True) from exc
    return Principal(user_id, claims.session_id, claims.scopes, claims.roles, claims)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_permission(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through only callers whose token carries `permission`."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"This needs the '{permission}' permission.")
        return principal

    return dependency


def require_service_scope(scope: str) -> Callable[[Request], Awaitable[AccessClaims]]:
    """For `/internal` routes: a service token for this service's audience carrying `scope`."""

    async def dependency(request: Request) -> AccessClaims:
        claims = await verify_bearer(request, request.app.state.internal_token_verifier)
        if scope not in claims.scopes or claims.session_id is not None:
            raise Forbidden(f"This needs a service token with the '{scope}' scope.")
        return claims

    return dependency
