"""The session rules: login, refresh rotation with reuse detection, expiry, revocation."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from common.errors import EmailNotVerified, Unauthorized
from common.revocation import mark_session_revoked, mark_user_tokens_before
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit import audit
from auth.clients import repository as clients_repository
from auth.clients.schemas import OIDC_SCOPES
from auth.clock import Clock, epoch
from auth.mfa.crypto import SecretBox
from auth.mfa.exceptions import MfaRequired, SecondFactorRefused
from auth.mfa.schemas import SECOND_FACTOR_METHODS
from auth.mfa.service import RedeemedTicket, SecondFactors
from auth.revocation import repository as revocation_repository
from auth.sessions import repository
from auth.sessions.exceptions import (
    AccountUnavailable,
    CredentialsChanged,
    RefreshRefused,
    RefreshTokenReused,
    RevocationUnavailable,
    SessionExpired,
)
from auth.sessions.models import LoginSession
from auth.sessions.repository import RefreshedSession
from auth.sessions.schemas import MAX_REFRESH_TOKEN_LENGTH, TokenPair
from auth.sessions.tokens import hash_refresh_token, new_refresh_token
from auth.settings import AuthSettings
from auth.signing import FIRST_PARTY_CLIENT_ID, AccessTokenSigner, Authentication
from auth.upstream.users import UserAuthorization, UsersClient, VerifiedUser

logger = logging.getLogger("gatehouse.auth.sessions")

# RFC 8176 methods of a login with a password alone, and with a one-time code after it (a TOTP
# code or a recovery code: both are one-time passwords).
PASSWORD_LOGIN_AMR = ("pwd",)
SECOND_FACTOR_LOGIN_AMR = ("pwd", "otp")
EMAIL_NOT_VERIFIED = (
    "This account's email address is not verified yet. Use the link in the email we sent, or "
    "choose a new password with 'forgot password', which verifies the address too."
)


@dataclass(frozen=True, slots=True)
class RefreshingClient:
    """Who presents a refresh token at the token endpoint: a client id, authenticated (a
    confidential client's secret checked) or only named (a public client)."""

    client_id: str
    authenticated: bool


@dataclass(frozen=True, slots=True)
class ClientGrant:
    """What a redeemed authorization code grants (auth.oidc): to whom, since when, and how."""

    client_id: str
    scope: str
    auth_time: datetime
    amr: str
    sso_session_id: str | None


@dataclass
class SessionRevoker:
    """Ending sessions: in the database (the source of truth), and in Redis where the gateway
    looks.

    The marker is written *before* the transaction commits, and a revocation whose marker Redis
    does not take (after one retry on a fresh connection, `make_redis(retries=1)`) raises
    `RevocationUnavailable` (503, `Retry-After`): the transaction rolls back and the client tries
    again. Committing the revocation anyway and leaving the marker to the restore
    (`auth.revocation.service`) would be safe only while the gateway fails closed, and it does not
    always: the gateway fails closed when *it* cannot reach Redis or the epoch is missing, but
    auth can fail to write while the gateway reads fine and the epoch is present (a network
    partition between auth and Redis, a read-only replica after a failover, auth's pool
    exhausted, a timeout on auth's side only). The restore runs only when the epoch is lost, so
    such a marker would never be written and the session's access tokens would pass the gateway
    until they expire while its refresh tokens were already dead. The other order is safe: a
    marker written and a commit that then fails refuses tokens of a session that the client was
    ending anyway, and its retry commits.

    Every revoking transaction holds the shared revocation lock until it commits, so that a
    restore waits for it (see `auth.revocation.service`).
    """

    db: AsyncSession
    redis: Redis
    settings: AuthSettings
    clock: Clock
    client_ip: str | None = None

    async def revoke_sessions(
        self, session_ids: Sequence[str], reason: str, *, user_id: str | None = None
    ) -> list[str]:
        """Revoke in the database and write the Redis markers the gateway checks."""
        await revocation_repository.hold_revocation_lock(self.db)
        revoked = await repository.revoke_sessions(self.db, session_ids, self.clock(), reason)
        lifetime = self.settings.max_access_token_lifetime
        for session_id in session_ids:
            await self._marked(mark_session_revoked(self.redis, session_id, lifetime))
        for session_id in revoked:
            audit(
                "session.revoked",
                user_id=user_id,
                session_id=session_id,
                client_ip=self.client_ip,
                reason=reason,
            )
        return revoked

    async def revoke_refresh_token(self, refresh_token: str, *, user_id: str | None = None) -> bool:
        """Revoke the session a refresh token belongs to (optionally only if it is `user_id`'s).
        False when the token is unknown."""
        if len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
            return False
        known = await repository.find_refresh_token(self.db, hash_refresh_token(refresh_token))
        if known is None:
            return False
        login_session = await repository.get_login_session(self.db, known.session_id)
        if login_session is None or (user_id is not None and login_session.user_id != user_id):
            return False
        await self.revoke_sessions([login_session.id], "revoked", user_id=login_session.user_id)
        return True

    async def end_user_sessions(self, user_id: str, reason: str, changed_at: datetime) -> list[str]:
        """Every session of the user opened up to `changed_at` ends (each gets its session
        marker); the user's access tokens issued in a second before `changed_at`'s are refused
        through the per-user marker. A token issued after the change is never refused
        (`common.revocation` states the comparison)."""
        session_ids = await repository.live_session_ids_of_user(self.db, user_id, changed_at)
        revoked = await self.revoke_sessions(session_ids, reason, user_id=user_id)
        await revocation_repository.raise_user_not_before(self.db, user_id, changed_at)
        await self._marked(
            mark_user_tokens_before(
                self.redis, user_id, epoch(changed_at), self.settings.max_access_token_lifetime
            )
        )
        return revoked

    @staticmethod
    async def _marked(write: Awaitable[None]) -> None:
        try:
            await write
        except RedisError as exc:
            logger.error("revocation marker not written (%s): %s", type(exc).__name__, exc)
            raise RevocationUnavailable() from exc


@dataclass
class SessionService:
    db: AsyncSession
    redis: Redis
    signer: AccessTokenSigner
    users: UsersClient
    settings: AuthSettings
    clock: Clock
    mfa_box: SecretBox
    client_ip: str | None = None
    user_agent: str | None = None

    @property
    def revoker(self) -> SessionRevoker:
        return SessionRevoker(self.db, self.redis, self.settings, self.clock, self.client_ip)

    @cached_property
    def second_factors(self) -> SecondFactors:
        return SecondFactors(
            self.db, self.mfa_box, self.users, self.settings, self.clock, self.client_ip
        )

    async def authenticate(self, login: str, password: str) -> VerifiedUser:
        """The active account of a username (or email) and password, else `Unauthorized`: the
        one password check of the login endpoint and of the hosted sign-in page alike (which
        then ask for the second factor the same way, `second_factors`)."""
        try:
            user = await self.users.verify_credentials(login, password)
        except Unauthorized:
            audit(
                "login.failed", client_ip=self.client_ip, login=login[:100], level=logging.WARNING
            )
            raise
        if not user.is_active:
            audit("login.failed", user_id=user.user_id, client_ip=self.client_ip, reason="inactive")
            raise Unauthorized("Incorrect username or password.")
        # After the password was found right (users answers 401 otherwise): the refusal tells
        # nothing to someone who does not know it.
        if self.settings.require_verified_email and not user.email_verified:
            audit(
                "login.failed",
                user_id=user.user_id,
                client_ip=self.client_ip,
                reason="email_not_verified",
            )
            raise EmailNotVerified(EMAIL_NOT_VERIFIED)
        return user

    async def login(self, login: str, password: str) -> TokenPair:
        user = await self.authenticate(login, password)
        if await self.second_factors.is_enabled(user.user_id):
            mfa_token = await self.second_factors.open_ticket(user.user_id)
            audit("login.mfa_required", user_id=user.user_id, client_ip=self.client_ip)
            raise MfaRequired(mfa_token, SECOND_FACTOR_METHODS)
        return await self._open_session(
            user.user_id, user.roles, user.permissions, PASSWORD_LOGIN_AMR
        )

    async def login_second_step(self, mfa_token: str, code: str) -> TokenPair:
        """The login a ticket (`mfa_token`) stands for, once its code is right: a new session
        whose `auth_time` is now and whose `amr` holds the second factor."""
        account = await self.second_step(mfa_token, code)
        return await self._open_session(
            account.user_id, account.roles, account.permissions, SECOND_FACTOR_LOGIN_AMR
        )

    async def passkey_account(self, user_id: str) -> UserAuthorization:
        """The account a verified passkey signs in without a password, while it still may: as
        `authenticate` after the password, active and, with REQUIRE_VERIFIED_EMAIL, verified.
        The password lockout (§10) does not hold it back: it counts guessed passwords, and a
        passkey is no password (it is the owner's way in while someone guesses)."""
        account = await self.users.active_account(user_id)
        if account is None:
            audit("login.failed", user_id=user_id, client_ip=self.client_ip, reason="inactive")
            raise Unauthorized("This passkey cannot sign in.")
        if self.settings.require_verified_email and not account.email_verified:
            audit(
                "login.failed",
                user_id=user_id,
                client_ip=self.client_ip,
                reason="email_not_verified",
            )
            raise EmailNotVerified(EMAIL_NOT_VERIFIED)
        return account

    async def second_step(self, mfa_token: str, code: str) -> UserAuthorization:
        """The account a ticket stands for, once its code is right and the account still may
        sign in: the second step of the login endpoint and of the hosted sign-in page alike."""
        return await self._ticket_account(await self.second_factors.redeem_ticket(mfa_token, code))

    async def second_step_with(
        self, mfa_token: str, check: Callable[[str], Awaitable[str | None]]
    ) -> UserAuthorization:
        """`second_step` with another second factor (the sign-in page's passkey): `check` as
        `SecondFactors.redeem_ticket_with` takes it."""
        return await self._ticket_account(
            await self.second_factors.redeem_ticket_with(mfa_token, check)
        )

    async def _ticket_account(self, ticket: RedeemedTicket) -> UserAuthorization:
        account = await self.users.active_account(ticket.user_id)
        changed_at = account.credentials_changed_at if account is not None else None
        if account is None or (changed_at is not None and changed_at > ticket.password_checked_at):
            # Gone, deactivated, or the password changed since it was checked: the ticket is
            # spent (committed with the refusal), and the login starts over.
            audit(
                "login.failed", user_id=ticket.user_id, client_ip=self.client_ip, reason="account"
            )
            raise SecondFactorRefused()
        return account

    def _new_session(
        self, user_id: str, client_id: str, now: datetime, *, auth_time: datetime, amr: str
    ) -> LoginSession:
        """A session of `client_id` opened now by this request's client (its address and agent,
        for the owner's session list), ending `refresh_token_ttl` from now however active."""
        return LoginSession(
            id=str(uuid.uuid4()),
            user_id=user_id,
            client_id=client_id,
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl),
            last_used_at=now,
            client_ip=self.client_ip,
            user_agent=self.user_agent,
            auth_time=auth_time,
            amr=amr,
        )

    async def _open_session(
        self,
        user_id: str,
        roles: Sequence[str],
        permissions: Sequence[str],
        methods: Sequence[str],
    ) -> TokenPair:
        now = self.clock()
        login_session = self._new_session(
            user_id, FIRST_PARTY_CLIENT_ID, now, auth_time=now, amr=" ".join(methods)
        )
        await repository.add_session(self.db, login_session)
        pair = await self._issue(login_session, roles, permissions, now)
        audit(
            "login.succeeded",
            user_id=user_id,
            session_id=login_session.id,
            client_ip=self.client_ip,
            amr=login_session.amr,
        )
        return pair

    async def open_client_session(
        self, grant: ClientGrant, account: UserAuthorization
    ) -> tuple[LoginSession, TokenPair]:
        """A session for an OpenID Connect client, from a redeemed authorization code: the
        sign-in's `auth_time` and `amr`, the granted scope, the sign-on session it belongs to."""
        now = self.clock()
        login_session = self._new_session(
            account.user_id, grant.client_id, now, auth_time=grant.auth_time, amr=grant.amr
        )
        login_session.scope = grant.scope
        login_session.sso_session_id = grant.sso_session_id
        await repository.add_session(self.db, login_session)
        pair = await self._issue(login_session, account.roles, account.permissions, now)
        audit(
            "code.redeemed",
            user_id=account.user_id,
            session_id=login_session.id,
            client_id=grant.client_id,
            client_ip=self.client_ip,
        )
        return login_session, pair

    async def refresh(
        self, refresh_token: str, client: RefreshingClient | None = None
    ) -> TokenPair:
        now = self.clock()
        if len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
            raise RefreshRefused()
        token_hash = hash_refresh_token(refresh_token)
        claimed = await repository.claim_refresh_token(self.db, token_hash, now)
        if claimed is None:
            await self._refuse_unclaimable(token_hash)
            raise RefreshRefused()
        login_session = await repository.refreshed_session(self.db, claimed.session_id)
        if login_session is None or login_session.revoked_at is not None:
            raise RefreshRefused()
        if not await self._client_may_refresh(login_session, client):
            await self.revoke_sessions(
                [login_session.id], "refresh_wrong_client", user_id=login_session.user_id
            )
            raise RefreshRefused("The refresh token was not issued to this client.")
        if now >= claimed.idle_expires_at or now >= login_session.expires_at:
            await self.revoke_sessions([login_session.id], "expired", user_id=login_session.user_id)
            raise SessionExpired("The session has expired; log in again.")
        account = await self.users.active_account(login_session.user_id)
        if account is None:
            await self.revoke_sessions(
                [login_session.id], "account_inactive", user_id=login_session.user_id
            )
            raise AccountUnavailable("The account is not active.")
        changed_at = account.credentials_changed_at
        if changed_at is not None and login_session.created_at < changed_at:
            # users' own word that the password changed after this login. The password-changed
            # event ends these sessions too, but it may be late (a backlog) or never come (the
            # broker down): this check does not depend on it. Same rule as the event handler:
            # the change time, never later than now.
            await self.revoker.end_user_sessions(
                login_session.user_id, "password_changed", min(changed_at, now)
            )
            raise CredentialsChanged("The password has changed; log in again.")
        await repository.touch_session(
            self.db, login_session.id, now, self.client_ip, self.user_agent
        )
        pair = await self._issue(login_session, account.roles, account.permissions, now)
        audit(
            "refresh.succeeded",
            user_id=login_session.user_id,
            session_id=login_session.id,
            client_ip=self.client_ip,
        )
        return pair

    async def _client_may_refresh(
        self, login_session: RefreshedSession, client: RefreshingClient | None
    ) -> bool:
        """RFC 6749 §6: a refresh token is bound to its client. A first-party session refreshes
        with no client; an OpenID Connect client's session only by that client (a confidential
        one authenticated), and never once the client is deleted."""
        if login_session.client_id == FIRST_PARTY_CLIENT_ID:
            return client is None
        registered = await clients_repository.registered_client(self.db, login_session.client_id)
        if registered is None:
            return False
        if registered.is_confidential:
            return (
                client is not None
                and client.authenticated
                and client.client_id == registered.client_id
            )
        return client is None or client.client_id == registered.client_id

    async def _refuse_unclaimable(self, token_hash: str) -> None:
        """A known token that was already used or revoked: revoke its whole session."""
        known = await repository.find_refresh_token(self.db, token_hash)
        if known is None:
            audit("refresh.unknown_token", client_ip=self.client_ip, level=logging.WARNING)
            return
        login_session = await repository.get_login_session(self.db, known.session_id)
        user_id = login_session.user_id if login_session else None
        revoked = await self.revoke_sessions([known.session_id], "refresh_reused", user_id=user_id)
        if revoked:
            audit(
                "refresh.reuse_detected",
                user_id=user_id,
                session_id=known.session_id,
                client_ip=self.client_ip,
                level=logging.WARNING,
            )
        raise RefreshTokenReused()

    async def _issue(
        self,
        login_session: LoginSession | RefreshedSession,
        roles: Sequence[str],
        permissions: Sequence[str],
        now: datetime,
    ) -> TokenPair:
        scope = permissions
        if login_session.scope is not None:
            # An OpenID Connect client's session: the OIDC scopes it was granted, and of the
            # permissions it asked for those the account holds now.
            granted = login_session.scope.split()
            scope = [s for s in granted if s in OIDC_SCOPES or s in permissions]
        access = self.signer.user_token(
            login_session.user_id,
            login_session.id,
            roles,
            scope,
            login_session.client_id,
            authentication=Authentication.of(login_session),
        )
        refresh_token = new_refresh_token()
        idle_end = min(
            now + timedelta(seconds=self.settings.refresh_idle_timeout),
            login_session.expires_at,
        )
        await repository.add_refresh_token(
            self.db, login_session.id, hash_refresh_token(refresh_token), now, idle_end
        )
        return TokenPair(
            access_token=access.token,
            expires_in=access.expires_in,
            refresh_token=refresh_token,
            refresh_expires_in=max(0, epoch(idle_end) - epoch(now)),
        )

    async def revoke_sessions(
        self, session_ids: Sequence[str], reason: str, *, user_id: str | None = None
    ) -> list[str]:
        return await self.revoker.revoke_sessions(session_ids, reason, user_id=user_id)

    async def revoke_refresh_token(self, refresh_token: str, *, user_id: str | None = None) -> bool:
        return await self.revoker.revoke_refresh_token(refresh_token, user_id=user_id)
