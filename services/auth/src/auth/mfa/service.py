"""Second factors: TOTP (RFC 6238: SHA-1, 6 digits, 30 s) with recovery codes, and the tickets
that carry a password login on to its second step (API.md §9).

Why auth owns these credentials, though users owns the password: a second factor is checked
only while a login is being made, and the login, its sessions and the `amr` its tokens carry are
auth's. Kept here, the second step (and the OIDC sign-in page's, `verify_second_factor`) reads
its own tables in its own transaction: the "no code twice" and "each recovery code once" rules
are single conditional statements in one database that every auth replica shares, and a TOTP
secret never crosses the network after enrolment. Kept in users, each login would need another
internal call carrying the code, and users would have to keep the replay state for a login it
does not make. No service reads another's tables; users keeps the password, auth the rest.

The secrets are sealed at rest (`auth.mfa.crypto`, `AUTH_MFA_ENCRYPTION_KEY`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyotp
import segno
from common.events import Envelope, EventType
from common.outbox import add_outbox_event
from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit import audit
from auth.clock import Clock, epoch
from auth.mfa import repository
from auth.mfa.crypto import (
    RECOVERY_CODE_COUNT,
    SecretBox,
    SecretUnreadable,
    canonical_recovery_code,
    new_recovery_code,
)
from auth.mfa.exceptions import (
    MfaNotEnabled,
    NoPendingEnrolment,
    SecondFactorRefused,
    SecondFactorUnreadable,
    WrongEnrolmentCode,
)
from auth.mfa.models import MfaTicket
from auth.mfa.schemas import MfaStatus, SecondFactorMethod, TotpEnrolment
from auth.models import OutboxEvent
from auth.settings import AuthSettings
from auth.upstream.users import Contact, UnknownUser, UsersClient

logger = logging.getLogger("gatehouse.auth.mfa")

TOTP_STEP_SECONDS = 30
# Codes of one step before and after now are accepted too: an authenticator's clock drifts.
TOTP_WINDOW_STEPS = 1
TICKET_LIFETIME = timedelta(minutes=5)
# The fifth wrong code voids the ticket: a new one needs the password again.
TICKET_ATTEMPTS = 5
TICKET_RANDOM_BYTES = 32


def new_totp_secret() -> str:
    """160 random bits in base32, RFC 4226's recommended length."""
    return pyotp.random_base32()


def time_step(moment: datetime) -> int:
    return epoch(moment) // TOTP_STEP_SECONDS


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within the window whose code `code` is, if any (compared in constant time)."""
    totp = pyotp.TOTP(secret)  # SHA-1, 6 digits, 30 s: what every authenticator app does
    current = time_step(now)
    for step in range(current - TOTP_WINDOW_STEPS, current + TOTP_WINDOW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def qr_code(uri: str) -> str:
    """The URI as a QR code (segno), an SVG data URI an enrolment page shows in an `<img>`."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4))


def ticket_hash(mfa_token: str) -> str:
    return hashlib.sha256(mfa_token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RedeemedTicket:
    user_id: str
    method: str  # a SecondFactorMethod, or "passkey" on the hosted sign-in page
    password_checked_at: datetime


@dataclass
class SecondFactors:
    db: AsyncSession
    box: SecretBox
    users: UsersClient
    settings: AuthSettings
    clock: Clock
    client_ip: str | None = None
    _contacts: dict[str, Contact | None] = field(default_factory=dict)

    async def status(self, user_id: str) -> MfaStatus:
        credential = await repository.totp_of(self.db, user_id)
        enabled = credential is not None and credential.secret is not None
        left = await repository.recovery_codes_left(self.db, user_id) if enabled else 0
        return MfaStatus(totp=enabled, recovery_codes_left=left)

    async def is_enabled(self, user_id: str) -> bool:
        credential = await repository.totp_of(self.db, user_id)
        return credential is not None and credential.secret is not None

    async def start_totp(self, user_id: str) -> TotpEnrolment:
        """A new pending secret (replacing any pending one); MFA stays as it was."""
        contact = await self._contact(user_id)
        label = contact.username if contact is not None else user_id
        secret = new_totp_secret()
        now = self.clock()
        await repository.save_pending_secret(self.db, user_id, self.box.seal(secret, user_id), now)
        uri = pyotp.TOTP(secret).provisioning_uri(name=label, issuer_name=self.settings.mfa_issuer)
        audit("mfa.enrolment_started", user_id=user_id, client_ip=self.client_ip)
        return TotpEnrolment(secret=secret, otpauth_uri=uri, qr_svg=qr_code(uri))

    async def confirm_totp(self, user_id: str, code: str) -> list[str]:
        """The pending secret becomes the account's second factor, with a new set of recovery
        codes (any older set is void). The code's time step is spent: it cannot log in."""
        credential = await repository.totp_of(self.db, user_id)
        if credential is None or credential.pending_secret is None:
            raise NoPendingEnrolment()
        pending = credential.pending_secret
        now = self.clock()
        step = matching_step(self._open(pending, user_id), code, now)
        if step is None:
            audit("mfa.failed", user_id=user_id, client_ip=self.client_ip, stage="enrolment")
            raise WrongEnrolmentCode()
        if not await repository.activate_pending_secret(self.db, user_id, pending, step, now):
            raise NoPendingEnrolment()  # restarted meanwhile: confirm the new secret instead
        codes = await self._new_recovery_codes(user_id, now)
        await self._notify("user.mfa_enabled", user_id)
        audit("mfa.enabled", user_id=user_id, client_ip=self.client_ip, method="totp")
        return codes

    async def disable_totp(self, user_id: str) -> None:
        """MFA off, recovery codes void, a pending enrolment dropped. Idempotent."""
        was_on = await repository.disable_totp(self.db, user_id)
        await repository.delete_recovery_codes(self.db, user_id)
        if was_on:
            await self._notify("user.mfa_disabled", user_id)
            audit("mfa.disabled", user_id=user_id, client_ip=self.client_ip)

    async def regenerate_recovery_codes(self, user_id: str) -> list[str]:
        if not await self.is_enabled(user_id):
            raise MfaNotEnabled()
        codes = await self._new_recovery_codes(user_id, self.clock())
        audit("mfa.recovery_codes_regenerated", user_id=user_id, client_ip=self.client_ip)
        return codes

    async def verify_second_factor(self, user_id: str, code: str) -> SecondFactorMethod | None:
        """Check and spend a TOTP code or a recovery code of the user: the method it was, or
        None. Every accepted code is spent in this transaction (the caller commits), and of two
        concurrent checks of one code, on any replica, exactly one gets a method back. For every
        sign-in that asks for a second factor: the API's second step, the hosted sign-in page."""
        credential = await repository.totp_of(self.db, user_id)
        if credential is None or credential.secret is None:
            return None
        if len(code) == 6 and code.isascii() and code.isdigit():
            step = matching_step(self._open(credential.secret, user_id), code, self.clock())
            if step is not None and await repository.claim_time_step(
                self.db, user_id, credential.secret, step
            ):
                return "totp"
            if step is not None:
                audit("mfa.replay_refused", user_id=user_id, client_ip=self.client_ip)
            return None
        canonical = canonical_recovery_code(code)
        if canonical is None or not await repository.use_recovery_code(
            self.db, user_id, self.box.code_hash(user_id, canonical)
        ):
            return None
        left = await repository.recovery_codes_left(self.db, user_id)
        await self._notify("user.mfa_recovery_code_used", user_id, recovery_codes_left=left)
        audit(
            "mfa.recovery_code_used",
            user_id=user_id,
            client_ip=self.client_ip,
            recovery_codes_left=left,
        )
        return "recovery_code"

    async def open_ticket(self, user_id: str) -> str:
        """The `mfa_token` for a login whose password was right: `<user id>.<random>`. The
        gateway keys the login limits on the user id part without a lookup; only the SHA-256 of
        the whole token is stored, so a token with another user's id in front is unknown."""
        now = self.clock()
        await repository.prune_tickets(self.db, now - TICKET_LIFETIME)
        token = f"{user_id}.{secrets.token_urlsafe(TICKET_RANDOM_BYTES)}"
        await repository.add_ticket(
            self.db,
            MfaTicket(
                token_hash=ticket_hash(token),
                user_id=user_id,
                created_at=now,
                expires_at=now + TICKET_LIFETIME,
                attempts=0,
                client_ip=self.client_ip,
            ),
        )
        return token

    async def ticket_user(self, mfa_token: str) -> str | None:
        """The user of a ticket that may still be redeemed (nothing spent): whose passkeys the
        second step may offer."""
        return await repository.live_ticket_user(
            self.db, ticket_hash(mfa_token), self.clock(), TICKET_ATTEMPTS
        )

    async def redeem_ticket(self, mfa_token: str, code: str) -> RedeemedTicket:
        """The ticket's user, once its code is right; the ticket is then used. Anything else is
        one `SecondFactorRefused` (the attempt it spent is committed)."""

        async def code_of(user_id: str) -> SecondFactorMethod | None:
            return await self.verify_second_factor(user_id, code)

        return await self.redeem_ticket_with(mfa_token, code_of)

    async def redeem_ticket_with(
        self, mfa_token: str, check: Callable[[str], Awaitable[str | None]]
    ) -> RedeemedTicket:
        """`redeem_ticket` with any second factor: `check(user_id)` is the method it proved, or
        None. A passkey's refusal spends an attempt as a wrong code does."""
        now = self.clock()
        token_hash = ticket_hash(mfa_token)
        attempt = await repository.spend_ticket_attempt(self.db, token_hash, now, TICKET_ATTEMPTS)
        if attempt is None:
            audit("mfa.failed", client_ip=self.client_ip, reason="ticket", level=logging.WARNING)
            raise SecondFactorRefused()
        method = await check(attempt.user_id)
        if method is None:
            audit(
                "mfa.failed",
                user_id=attempt.user_id,
                client_ip=self.client_ip,
                reason="code",
                attempts=attempt.attempts,
                level=logging.WARNING,
            )
            if attempt.attempts >= TICKET_ATTEMPTS:
                audit("mfa.ticket_voided", user_id=attempt.user_id, client_ip=self.client_ip)
            raise SecondFactorRefused()
        ticket = await repository.use_ticket(self.db, token_hash, now)
        return RedeemedTicket(attempt.user_id, method, ticket)

    def _open(self, sealed: bytes, user_id: str) -> str:
        try:
            return self.box.open(sealed, user_id)
        except SecretUnreadable:
            logger.error(
                "the TOTP secret of %s does not open with AUTH_MFA_ENCRYPTION_KEY", user_id
            )
            raise SecondFactorUnreadable() from None

    async def _new_recovery_codes(self, user_id: str, now: datetime) -> list[str]:
        codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        hashes = [self.box.code_hash(user_id, canonical_recovery_code(c) or "") for c in codes]
        await repository.replace_recovery_codes(self.db, user_id, hashes, now)
        return codes

    async def _contact(self, user_id: str) -> Contact | None:
        if user_id not in self._contacts:
            try:
                self._contacts[user_id] = (await self.users.authorization(user_id)).contact
            except UnknownUser:
                self._contacts[user_id] = None
        return self._contacts[user_id]

    async def _notify(self, event_type: EventType, user_id: str, **data: Any) -> None:
        """The notice email's event, in this transaction (auth's outbox)."""
        contact = await self._contact(user_id)
        if contact is None:
            logger.warning("no address known for %s: %s not sent", user_id, event_type)
            return
        envelope = Envelope(
            type=event_type,
            data={
                "user_id": contact.user_id,
                "email": contact.email,
                "username": contact.username,
                "full_name": contact.full_name,
                **data,
            },
        )
        await add_outbox_event(self.db, OutboxEvent, envelope)
