"""OpenID Connect UserInfo (Core §5.3): the claims of the access token's scopes."""

from __future__ import annotations

from typing import Any

from common.db import DbDep
from common.errors import AppError, Unauthorized, problem_responses
from common.security import CurrentPrincipal
from fastapi import APIRouter, Request, Response

from auth.oidc.service import scoped_claims
from auth.sessions import repository as sessions_repository
from auth.state import auth_state

router = APIRouter(prefix="/api/v1/auth", tags=["openid connect"])


class InsufficientScope(AppError):
    """RFC 6750 §3.1: the token is good but was not issued for this."""

    status, title = 403, "Forbidden"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"The token needs the '{scope}' scope.",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )


@router.get("/userinfo", responses=problem_responses(401, 403, 503))
async def userinfo(
    principal: CurrentPrincipal, db: DbDep, request: Request, response: Response
) -> dict[str, Any]:
    """The signed-in user's claims for the token's scopes: `sub` always; `preferred_username`
    and `name` with `profile`; `email` and `email_verified` with `email`. Needs an access token
    issued with `openid`, whose session is still live."""
    if "openid" not in principal.scopes or principal.session_id is None:
        raise InsufficientScope("openid")
    login_session = await sessions_repository.get_login_session(db, principal.session_id)
    if login_session is None or login_session.revoked_at is not None:
        raise Unauthorized("The token's session has ended.", token_presented=True)
    account = await auth_state(request).users.active_account(str(principal.user_id))
    if account is None:
        raise Unauthorized("The account is not active.", token_presented=True)
    response.headers["Cache-Control"] = "no-store"
    return {"sub": account.user_id, **scoped_claims(account, principal.scopes)}
