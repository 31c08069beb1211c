"""An in-test stand-in for the users service's two internal endpoints.

It checks the service token as users does (RS256 from auth's JWKS, audience "users", the needed
scope, no `sid`), so the tests exercise auth's service-token path too.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt
from common.errors import Forbidden, Unauthorized, install_error_handlers
from common.identity import canonical_name
from common.security import bearer_token
from common.tokens import JwksCache, TokenVerifier
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse

PERMISSIONS = {"user": [], "admin": ["users:read", "users:manage", "clients:manage"]}


@dataclass
class Account:
    user_id: str
    username: str
    email: str
    password: str
    roles: list[str] = field(default_factory=lambda: ["user"])
    is_active: bool = True
    credentials_changed_at: datetime | None = None
    full_name: str = "Test Person"
    email_verified: bool = False

    def permissions(self) -> list[str]:
        return sorted({p for role in self.roles for p in PERMISSIONS.get(role, [])})


@dataclass
class UsersDouble:
    accounts: dict[str, Account] = field(default_factory=dict)
    down: bool = False
    # users' password hashing is saturated: it answers 503 + Retry-After at once (API.md §11).
    busy: bool = False
    calls: list[str] = field(default_factory=list)
    scopes_seen: list[frozenset[str]] = field(default_factory=list)
    # Tests that move auth's clock sign tokens "in the future": check all but the times then.
    ignore_token_times: bool = False
    # Whether new accounts' addresses count as verified (REQUIRE_VERIFIED_EMAIL harnesses).
    verified_by_default: bool = False

    def add(
        self, *, roles: tuple[str, ...] = ("user",), password: str = "correct horse 1"
    ) -> Account:
        name = "u" + uuid.uuid4().hex[:12]
        account = Account(str(uuid.uuid4()), name, f"{name}@example.com", password, list(roles))
        account.email_verified = self.verified_by_default
        self.accounts[account.user_id] = account
        return account

    def find(self, login: str) -> Account | None:
        # As users matches: the one canonical form (common.identity), never a plain lower().
        key = canonical_name(login)
        return next(
            (
                a
                for a in self.accounts.values()
                if key in (canonical_name(a.username), canonical_name(a.email))
            ),
            None,
        )


class VerifyBody(BaseModel):
    login: str
    password: str


def build_users_app(
    double: UsersDouble,
    jwks: Callable[[], Awaitable[Mapping[str, Any]]],
    issuer: str,
) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    cache = JwksCache(jwks, max_age=1, refetch_cooldown=0)
    verifier = TokenVerifier(cache, issuer=issuer, audience="users")

    def require_service_scope(scope: str) -> Callable[[Request], Awaitable[frozenset[str]]]:
        async def dependency(request: Request) -> frozenset[str]:
            token = bearer_token(request)
            if token is None:
                raise Unauthorized("A bearer token is required.")
            try:
                if double.ignore_token_times:
                    header = jwt.get_unverified_header(token)
                    key = await cache.key_for(header["kid"])
                    payload = jwt.decode(
                        token,
                        key,
                        algorithms=["RS256"],
                        audience="users",
                        issuer=issuer,
                        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
                    )
                    scopes = frozenset(payload["scope"].split())
                    sid = payload.get("sid")
                else:
                    claims = await verifier.verify(token)
                    scopes, sid = claims.scopes, claims.session_id
            except Exception as exc:
                raise Unauthorized("bad service token", token_presented=True) from exc
            if scope not in scopes or sid is not None:
                raise Forbidden(f"needs {scope}")
            double.scopes_seen.append(scopes)
            return scopes

        return dependency

    verify_scope = require_service_scope("credentials:verify")
    authorization_scope = require_service_scope("users:authorization")

    @app.post("/internal/v1/credentials/verify", dependencies=[Depends(verify_scope)])
    async def verify(body: VerifyBody) -> Any:
        double.calls.append("verify")
        if double.down:
            return JSONResponse({"title": "down"}, status_code=503)
        if double.busy:
            return JSONResponse(
                {"title": "Service Unavailable", "status": 503},
                status_code=503,
                headers={"Retry-After": "2"},
                media_type="application/problem+json",
            )
        account = double.find(body.login)
        if account is None or account.password != body.password or not account.is_active:
            raise Unauthorized("Incorrect username or password.")
        return {
            "user_id": account.user_id,
            "username": account.username,
            "email": account.email,
            "email_verified": account.email_verified,
            "is_active": account.is_active,
            "roles": account.roles,
            "permissions": account.permissions(),
        }

    @app.get(
        "/internal/v1/users/{user_id}/authorization", dependencies=[Depends(authorization_scope)]
    )
    async def authorization(user_id: str) -> Any:
        double.calls.append("authorization")
        if double.down:
            return JSONResponse({"title": "down"}, status_code=503)
        account = double.accounts.get(user_id)
        if account is None:
            return JSONResponse({"title": "Not Found", "status": 404}, status_code=404)
        return {
            "user_id": account.user_id,
            "username": account.username,
            "email": account.email,
            "full_name": account.full_name,
            "is_active": account.is_active,
            "roles": account.roles,
            "permissions": account.permissions(),
            "credentials_changed_at": (
                account.credentials_changed_at.isoformat()
                if account.credentials_changed_at is not None
                else None
            ),
            "email_verified": account.email_verified,
        }

    return app
