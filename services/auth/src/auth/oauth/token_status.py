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
from common.db import Database
from common.tokens import AccessClaims, InvalidToken, TokenVerifier

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
        verifier = next((v for v in self.verifiers.values() if v.remembers(token)), None)
        if verifier is None:  # not verified lately: its unverified audience picks the verifier
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

    async def introspect_access_token(
        self, token: str, database: Database
    ) -> dict[str, Any] | None:
        claims = await self.verify_access_token(token)
        if claims is None:
            return None
        state = await revocations.access_token_state(database, claims.session_id, claims.subject)
        if claims.session_id is not None and not state["session_live"]:
            return INACTIVE  # no such session, or revoked
        not_before = state["not_before"]
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
    token: str, database: Database, now: datetime
) -> dict[str, Any] | None:
    """None when the token is not a refresh token we know; else its (possibly inactive) state."""
    if len(token) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    known = await sessions.refresh_token_state(database, hash_refresh_token(token))
    if known is None:
        return None
    if (
        known["session_id"] is None
        or known["used_at"] is not None
        or known["revoked_at"] is not None
        or known["session_revoked_at"] is not None
        or now >= known["idle_expires_at"]
        or now >= known["session_expires_at"]
    ):
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": known["client_id"],
        "sub": known["user_id"],
        "sid": known["session_id"],
        "iat": epoch(known["created_at"]),
        "exp": epoch(known["idle_expires_at"]),
    }
