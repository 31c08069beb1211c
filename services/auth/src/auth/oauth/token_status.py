"""What auth knows about a presented token, for introspection (RFC 7662) and revocation.

Access tokens are verified with the shared `common.tokens.TokenVerifier` against auth's own key
ring (no HTTP), for any audience auth issues to; a token is active only while its session and
user are not revoked — read from auth's database, the source of truth, so the answer is right
while Redis is down or has lost its markers. Refresh tokens are looked up by hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import jwt
from common.tokens import AccessClaims, InvalidToken, TokenVerifier
from sqlalchemy.ext.asyncio import AsyncSession

from auth.clock import epoch
from auth.keys.service import KeyRing, KeyRingJwks
from auth.revocation import repository as revocations
from auth.sessions import repository as sessions
from auth.sessions.schemas import MAX_REFRESH_TOKEN_LENGTH
from auth.sessions.tokens import hash_refresh_token
from auth.settings import AuthSettings

INACTIVE: dict[str, Any] = {"active": False}


class TokenInspector:
    def __init__(self, ring: KeyRing, settings: AuthSettings, audiences: Iterable[str]) -> None:
        jwks = KeyRingJwks(ring)
        self.verifiers = {
            audience: TokenVerifier.for_audience(
                jwks, settings, audience, cache_size=settings.verified_token_cache
            )
            for audience in audiences
        }

    async def verify_access_token(self, token: str) -> AccessClaims | None:
        """The claims of a token auth signed and that has not expired, for any audience."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        audience = unverified.get("aud") if isinstance(unverified, dict) else None
        verifier = self.verifiers.get(audience) if isinstance(audience, str) else None
        if verifier is None:
            return None
        try:
            return await verifier.verify(token)
        except InvalidToken:
            return None

    async def introspect_access_token(self, token: str, db: AsyncSession) -> dict[str, Any] | None:
        claims = await self.verify_access_token(token)
        if claims is None:
            return None
        if claims.session_id is not None:
            login_session = await sessions.get_login_session(db, claims.session_id)
            if login_session is None or login_session.revoked_at is not None:
                return INACTIVE
        not_before = await revocations.user_not_before(db, claims.subject)
        # The rule of common.revocation, as the gateway applies it to the Redis marker.
        if not_before is not None and claims.issued_at < epoch(not_before):
            return INACTIVE
        raw = claims.raw
        answer = {
            "active": True,
            "token_type": "Bearer",
            "scope": " ".join(sorted(claims.scopes)),
            "client_id": claims.client_id,
            "sub": claims.subject,
            "aud": raw.get("aud"),
            "iss": raw.get("iss"),
            "exp": claims.expires_at,
            "iat": claims.issued_at,
            "nbf": raw.get("nbf"),
            "jti": claims.token_id,
            "roles": list(claims.roles),
        }
        if claims.session_id is not None:
            answer["sid"] = claims.session_id
        return answer


async def introspect_refresh_token(
    token: str, db: AsyncSession, now: datetime
) -> dict[str, Any] | None:
    """None when the token is not a refresh token we know; else its (possibly inactive) state."""
    if len(token) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    known = await sessions.find_refresh_token(db, hash_refresh_token(token))
    if known is None:
        return None
    login_session = await sessions.get_login_session(db, known.session_id)
    if (
        login_session is None
        or known.used_at is not None
        or known.revoked_at is not None
        or login_session.revoked_at is not None
        or now >= known.idle_expires_at
        or now >= login_session.expires_at
    ):
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": login_session.client_id,
        "sub": login_session.user_id,
        "sid": login_session.id,
        "iat": epoch(known.created_at),
        "exp": epoch(known.idle_expires_at),
    }
