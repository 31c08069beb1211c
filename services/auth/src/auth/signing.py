"""Signing access tokens (RFC 9068) with the active key held by the key ring."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import jwt

from auth.clock import Clock, epoch
from auth.keys.service import KeyRing
from auth.settings import AuthSettings

FIRST_PARTY_CLIENT_ID = "gatehouse"


@dataclass(frozen=True, slots=True)
class SignedToken:
    token: str
    expires_in: int
    expires_at: int


class SessionLogin(Protocol):
    """What a session keeps of its login: a `LoginSession`, or the row a refresh reads."""

    @property
    def auth_time(self) -> datetime | None: ...

    @property
    def amr(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Authentication:
    """When and how the user last proved a credential: `auth_time` and `amr` of their tokens."""

    at: datetime
    methods: tuple[str, ...]

    @classmethod
    def of(cls, login_session: SessionLogin) -> Authentication | None:
        """The session's login; None for a session that never recorded one."""
        if login_session.auth_time is None:
            return None
        return cls(login_session.auth_time, tuple((login_session.amr or "").split()))

    def claims(self) -> dict[str, Any]:
        return {"auth_time": epoch(self.at), "amr": list(self.methods)}


class AccessTokenSigner:
    def __init__(self, ring: KeyRing, settings: AuthSettings, clock: Clock) -> None:
        self.ring = ring
        self.settings = settings
        self.clock = clock

    def _sign(self, claims: dict[str, Any], *, typ: str = "at+jwt") -> SignedToken:
        key = self.ring.active()
        now = epoch(self.clock())
        ttl = self.settings.access_token_ttl
        payload = {
            "iss": self.settings.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        token = jwt.encode(
            payload,
            key.private_key,
            algorithm="RS256",
            headers={"typ": typ, "kid": key.kid},
        )
        return SignedToken(token, ttl, now + ttl)

    def user_token(
        self,
        user_id: str,
        session_id: str,
        roles: Iterable[str],
        permissions: Iterable[str],
        client_id: str = FIRST_PARTY_CLIENT_ID,
        *,
        authentication: Authentication | None = None,
    ) -> SignedToken:
        claims: dict[str, Any] = {
            "sub": user_id,
            "aud": self.settings.audience,
            "client_id": client_id,
            "sid": session_id,
            "roles": list(roles),
            "scope": " ".join(sorted(set(permissions))),
        }
        if authentication is not None:
            claims.update(authentication.claims())
        return self._sign(claims)

    def service_token(self, client_id: str, audience: str, scopes: Iterable[str]) -> SignedToken:
        """A token for service-to-service calls: no `sid`, `sub` = `client_id` = the caller."""
        return self._sign(
            {
                "sub": client_id,
                "aud": audience,
                "client_id": client_id,
                "roles": [],
                "scope": " ".join(sorted(set(scopes))),
            }
        )

    def id_token(
        self,
        client_id: str,
        user_id: str,
        authentication: Authentication,
        access_token: str,
        *,
        nonce: str | None,
        claims: dict[str, Any],
    ) -> str:
        """An OpenID Connect ID token (Core §2) for `client_id`: `aud` is the client, `at_hash`
        binds it to the access token issued with it (Core §3.1.3.6), `typ` is plain JWT so that
        no verifier of access tokens (RFC 9068 `at+jwt`) ever takes it for one."""
        payload: dict[str, Any] = {
            "sub": user_id,
            "aud": client_id,
            "azp": client_id,
            "at_hash": at_hash(access_token),
            **authentication.claims(),
            **claims,
        }
        if nonce is not None:
            payload["nonce"] = nonce
        return self._sign(payload, typ="JWT").token


def at_hash(access_token: str) -> str:
    """The left half of the SHA-256 of the token, base64url (RS256's hash)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")
