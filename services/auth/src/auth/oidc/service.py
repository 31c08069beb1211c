"""The OpenID Connect provider's rules: single sign-on sessions, consent, authorization codes and
their redemption, and ending a sign-on session with every session it opened."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit import audit
from auth.clients.models import RegisteredClient
from auth.clock import Clock
from auth.oidc import repository
from auth.oidc.models import AuthorizationCode, Consent, SsoSession
from auth.oidc.requests import AuthorizationRequest
from auth.sessions.service import ClientGrant, SessionRevoker, SessionService
from auth.sessions.tokens import hash_refresh_token
from auth.settings import AuthSettings
from auth.signing import Authentication
from auth.upstream.users import UnknownUser, UserAuthorization, UsersClient

logger = logging.getLogger("gatehouse.auth.oidc")

CODE_TTL_SECONDS = 60
# RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
CODE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
MAX_CODE_LENGTH = 512

# The claims each scope releases (OpenID Connect Core §5.4), in id tokens and at UserInfo.
PROFILE_CLAIMS = ("preferred_username", "name")
EMAIL_CLAIMS = ("email", "email_verified")


def hash_secret(value: str) -> str:
    """Codes and sign-on cookies are random (256 bits): SHA-256 is enough (see sessions.tokens)."""
    return hash_refresh_token(value)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def scoped_claims(account: UserAuthorization, scopes: frozenset[str]) -> dict[str, Any]:
    """The claims of `scopes` (Core §5.4); none of them from a users that does not say."""
    claims: dict[str, Any] = {}
    contact = account.contact
    if contact is None:
        return claims
    if "profile" in scopes:
        claims["preferred_username"] = contact.username
        claims["name"] = contact.full_name
    if "email" in scopes:
        claims["email"] = contact.email
        claims["email_verified"] = account.email_verified
    return claims


class CodeRefused(Exception):
    """`invalid_grant` for a code: what the refusal did (the code spent, a reused code's session
    revoked) is committed before the answer (`common.db.CommitThenAnswer`)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def invalid_grant(description: str) -> CodeRefused:
    return CodeRefused(description)


@dataclass
class OidcService:
    db: AsyncSession
    settings: AuthSettings
    clock: Clock
    users: UsersClient
    client_ip: str | None = None

    # --- single sign-on -------------------------------------------------------------------

    async def live_sso(self, cookie: str | None) -> SsoSession | None:
        """The sign-on session of the browser's cookie, while it is neither ended nor expired."""
        if not cookie or len(cookie) > 128:
            return None
        sso = await repository.find_sso_session(self.db, hash_secret(cookie))
        if sso is None or sso.revoked_at is not None:
            return None
        if self.clock() >= sso.expires_at:
            return None
        return sso

    async def start_sso(
        self, user_id: str, amr: tuple[str, ...], current: SsoSession | None = None
    ) -> tuple[str, SsoSession]:
        """A sign-on session for a sign-in that just succeeded; returns the cookie's new value
        (kept only as a hash) and it. The browser's live session of the same user is renewed
        rather than replaced (`prompt=login`, `max_age`: the same browser signing in again), so
        end-session still ends every app it signed in; its cookie value changes all the same,
        so a value known before the sign-in is worth nothing after it."""
        now = self.clock()
        token = secrets.token_urlsafe(32)
        if current is not None and current.user_id == user_id:
            await repository.renew_sso_session(
                self.db, current.id, hash_secret(token), now, " ".join(amr)
            )
            renewed = await repository.get_sso_session(self.db, current.id)
            assert renewed is not None
            audit("sso.renewed", user_id=user_id, client_ip=self.client_ip, reason=renewed.amr)
            return token, renewed
        # Pruned on write, as codes and MFA tickets are (no sweeper to run): a sign-on session
        # is kept until every session it opened has reached its absolute end (a code is issued
        # before it expires, its session lives REFRESH_TOKEN_TTL at most), because until then
        # end-session with an old id_token_hint finds those sessions through it.
        await repository.delete_sso_sessions_expired_before(
            self.db, now - timedelta(seconds=self.settings.refresh_token_ttl)
        )
        sso = SsoSession(
            id=str(uuid.uuid4()),
            token_hash=hash_secret(token),
            user_id=user_id,
            auth_time=now,
            amr=" ".join(amr),
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.sso_session_ttl),
        )
        await repository.add_sso_session(self.db, sso)
        audit("sso.started", user_id=user_id, client_ip=self.client_ip, reason=sso.amr)
        return token, sso

    def needs_fresh_sign_in(self, request: AuthorizationRequest, sso: SsoSession | None) -> bool:
        if sso is None or "login" in request.prompt:
            return True
        if request.max_age is not None:
            age = (self.clock() - sso.auth_time).total_seconds()
            return age > request.max_age
        return False

    async def end_sso(self, sso_id: str, revoker: SessionRevoker, reason: str) -> list[str]:
        """End the sign-on session and every session its codes opened (their markers too)."""
        await repository.revoke_sso_session(self.db, sso_id, self.clock())
        sso = await repository.get_sso_session(self.db, sso_id)
        session_ids = await repository.live_session_ids_of_sso(self.db, sso_id)
        user_id = sso.user_id if sso is not None else None
        revoked = await revoker.revoke_sessions(session_ids, reason, user_id=user_id)
        audit("sso.ended", user_id=user_id, client_ip=self.client_ip, reason=reason)
        return revoked

    async def display_name(self, sso: SsoSession) -> str:
        """Who is signed in, for the consent page ("signed in as …")."""
        try:
            account = await self.users.authorization(sso.user_id)
        except UnknownUser:
            return "an unknown account"
        return account.contact.username if account.contact else "your account"

    # --- consent --------------------------------------------------------------------------

    async def needs_consent(
        self, user_id: str, request: AuthorizationRequest, *, asked: bool
    ) -> bool:
        """Third-party clients ask once per scope (and again on prompt=consent); first-party
        clients never."""
        if request.client.first_party:
            return False
        if asked:
            return True
        consent = await repository.get_consent(self.db, user_id, request.client.client_id)
        return consent is None or not request.scopes <= frozenset(consent.scope.split())

    async def remember_consent(self, user_id: str, request: AuthorizationRequest) -> None:
        consent = await repository.get_consent(self.db, user_id, request.client.client_id)
        scopes = set(request.scopes) | (set(consent.scope.split()) if consent else set())
        await repository.save_consent(
            self.db,
            Consent(
                user_id=user_id,
                client_id=request.client.client_id,
                scope=" ".join(sorted(scopes)),
                granted_at=self.clock(),
            ),
        )
        audit("consent.granted", user_id=user_id, client_id=request.client.client_id)

    # --- codes ----------------------------------------------------------------------------

    async def issue_code(self, request: AuthorizationRequest, sso: SsoSession) -> str:
        now = self.clock()
        await repository.delete_codes_expired_before(self.db, now - timedelta(minutes=10))
        code = secrets.token_urlsafe(32)
        await repository.add_code(
            self.db,
            AuthorizationCode(
                code_hash=hash_secret(code),
                client_id=request.client.client_id,
                redirect_uri=request.redirect_uri,
                user_id=sso.user_id,
                sso_session_id=sso.id,
                scope=request.scope,
                nonce=request.nonce,
                code_challenge=request.code_challenge,
                auth_time=sso.auth_time,
                amr=sso.amr,
                created_at=now,
                expires_at=now + timedelta(seconds=CODE_TTL_SECONDS),
            ),
        )
        return code

    async def redeem_code(
        self,
        client: RegisteredClient,
        code: str,
        redirect_uri: str | None,
        verifier: str | None,
        sessions: SessionService,
    ) -> dict[str, Any]:
        """The token answer for a code (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3).

        The code is claimed first, atomically, so that of two redemptions only one gets past
        this point; a code that was already used revokes the session its first redemption
        opened (RFC 6749 §4.1.2: it may have been stolen). Every later refusal leaves the code
        spent."""
        now = self.clock()
        if len(code) > MAX_CODE_LENGTH:
            raise invalid_grant("The code is invalid, expired or used.")
        code_hash = hash_secret(code)
        grant = await repository.claim_code(self.db, code_hash, now)
        if grant is None:
            await self._refuse_used_code(code_hash, sessions.revoker)
            raise invalid_grant("The code is invalid, expired or used.")
        if now >= grant.expires_at:
            raise invalid_grant("The code is invalid, expired or used.")
        if grant.client_id != client.client_id:
            raise invalid_grant("The code was issued to another client.")
        if redirect_uri != grant.redirect_uri:
            raise invalid_grant("redirect_uri does not match the authorization request.")
        if verifier is None or CODE_VERIFIER.fullmatch(verifier) is None:
            raise invalid_grant("code_verifier is missing or malformed.")
        if not hmac.compare_digest(s256(verifier), grant.code_challenge):
            raise invalid_grant("code_verifier does not match the code_challenge.")
        if grant.sso_session_id is not None:
            sso = await repository.get_sso_session(self.db, grant.sso_session_id)
            if sso is None or sso.revoked_at is not None:
                raise invalid_grant("The sign-in behind this code has ended.")
        account = await sessions.users.active_account(grant.user_id)
        if account is None:
            raise invalid_grant("The account is not active.")
        login_session, pair = await sessions.open_client_session(
            ClientGrant(
                client_id=client.client_id,
                scope=grant.scope,
                auth_time=grant.auth_time,
                amr=grant.amr,
                sso_session_id=grant.sso_session_id,
            ),
            account,
        )
        await repository.record_code_session(self.db, code_hash, login_session.id)
        scopes = frozenset(grant.scope.split())
        claims = scoped_claims(account, scopes)
        if grant.sso_session_id is not None:
            claims["sid"] = grant.sso_session_id  # which sign-on session end-session ends
        authentication = Authentication.of(login_session)
        assert authentication is not None  # a code always records its sign-in
        id_token = sessions.signer.id_token(
            client.client_id,
            account.user_id,
            authentication,
            pair.access_token,
            nonce=grant.nonce,
            claims=claims,
        )
        return {**pair.model_dump(), "id_token": id_token, "scope": grant.scope}

    async def _refuse_used_code(self, code_hash: str, revoker: SessionRevoker) -> None:
        used = await repository.find_code(self.db, code_hash)
        if used is None or used.session_id is None:
            return
        revoked = await revoker.revoke_sessions(
            [used.session_id], "code_reused", user_id=used.user_id
        )
        if revoked:
            audit(
                "code.reuse_detected",
                user_id=used.user_id,
                session_id=used.session_id,
                client_id=used.client_id,
                client_ip=self.client_ip,
                level=logging.WARNING,
            )
