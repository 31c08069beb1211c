"""Who is calling, and may they: the `CurrentPrincipal`, `require_permission` and
`require_recent_authentication` dependencies.

Every service verifies the bearer token itself (the gateway's check is not trusted): the verifier
is built in the lifespan and kept with `common.state.keep_state`. Identity headers are never read.

Recent authentication (RFC 9470, API.md §9): a sensitive operation needs a login (`auth_time`) no
older than `STEP_UP_MAX_AGE`, else a 401 `insufficient_user_authentication` challenge carrying
`max_age`. With `ADMIN_REQUIRES_MFA`, the admin permissions (`users:*`, `clients:manage`) count
only in tokens whose `amr` holds a second factor; a route needing one answers the same challenge
with `acr_values="mfa"`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from common.errors import Forbidden, InsufficientUserAuthentication, Unauthorized
from common.state import required, runtime_of
from common.tokens import AccessClaims, InvalidToken, JwksUnavailable, TokenVerifier

LOGIN_PATH = "/api/v1/auth/login"
# RFC 8176 `amr` values that prove a second factor.
SECOND_FACTORS = frozenset({"otp", "hwk", "swk", "mfa"})
# The permissions that ADMIN_REQUIRES_MFA reserves for tokens with a second factor: every
# permission of an admin (API.md §4) — the accounts, and the client registry, whose clients sign
# anyone in.
ADMIN_PERMISSION_PREFIXES = ("users:", "clients:")

# Declares the OAuth2 password flow in OpenAPI (Swagger's Authorize button); we do the checks.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=LOGIN_PATH, auto_error=False)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    session_id: str | None
    scopes: frozenset[str]
    roles: tuple[str, ...]
    claims: AccessClaims
    # When the user last proved a credential (epoch seconds), and how (RFC 8176).
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    # Permissions the token carries that do not count without a second factor (ADMIN_REQUIRES_MFA).
    withheld: frozenset[str] = frozenset()

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
    runtime = runtime_of(request.app)
    claims = await verify_bearer(request, required(runtime.token_verifier, "token verifier"))
    if claims.session_id is None:
        # Service tokens (client_credentials) have no user session and act for no user.
        raise Unauthorized("A user token is required.", token_presented=True)
    try:
        user_id = UUID(claims.subject)
    except ValueError as exc:
        raise Unauthorized("The token is invalid or expired.", token_presented=True) from exc
    scopes, withheld = claims.scopes, frozenset[str]()
    if runtime.settings.admin_requires_mfa and SECOND_FACTORS.isdisjoint(claims.amr):
        withheld = frozenset(s for s in scopes if s.startswith(ADMIN_PERMISSION_PREFIXES))
        scopes = scopes - withheld
    return Principal(
        user_id,
        claims.session_id,
        scopes,
        claims.roles,
        claims,
        auth_time=claims.auth_time,
        amr=claims.amr,
        withheld=withheld,
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def ensure_permission(principal: Principal, permission: str) -> None:
    """Raise unless the token carries `permission` (403; the MFA challenge when the permission
    is withheld for want of a second factor). For routes where only some requests need it."""
    if principal.can(permission):
        return
    if permission in principal.withheld:
        raise InsufficientUserAuthentication(
            "A login with a second factor is required", acr_values="mfa"
        )
    raise Forbidden(f"This needs the '{permission}' permission.")


def require_permission(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through only callers whose token carries `permission`."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        ensure_permission(principal, permission)
        return principal

    return dependency


def ensure_recent_authentication(
    request: Request, principal: Principal, max_age: int | None = None
) -> None:
    """Raise the RFC 9470 challenge unless the caller logged in at most `max_age` seconds ago
    (default: the `STEP_UP_MAX_AGE` setting). For routes where only some requests need it."""
    if max_age is None:
        max_age = runtime_of(request.app).settings.step_up_max_age
    auth_time = principal.auth_time
    if auth_time is None or time.time() - auth_time > max_age:
        raise InsufficientUserAuthentication(
            "More recent authentication is required", max_age=max_age
        )


def require_recent_authentication(
    permission: str | None = None, *, max_age: int | None = None
) -> Callable[[Request, Principal], Awaitable[Principal]]:
    """A dependency that lets through only callers who logged in recently (and, given
    `permission`, whose token carries it: 403 before the recency's 401)."""

    async def dependency(request: Request, principal: CurrentPrincipal) -> Principal:
        if permission is not None:
            ensure_permission(principal, permission)
        ensure_recent_authentication(request, principal, max_age)
        return principal

    return dependency


RecentPrincipal = Annotated[Principal, Depends(require_recent_authentication())]


def internal_verifier(request: Request) -> TokenVerifier:
    """The verifier of service tokens for this service's own audience (its `/internal` API)."""
    return required(runtime_of(request.app).internal_token_verifier, "service token verifier")


def require_service_scope(scope: str) -> Callable[[Request], Awaitable[AccessClaims]]:
    """For `/internal` routes: a service token for this service's audience carrying `scope`."""

    async def dependency(request: Request) -> AccessClaims:
        claims = await verify_bearer(request, internal_verifier(request))
        if scope not in claims.scopes or claims.session_id is not None:
            raise Forbidden(f"This needs a service token with the '{scope}' scope.")
        return claims

    return dependency
