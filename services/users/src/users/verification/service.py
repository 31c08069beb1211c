"""Email verification (API.md §8): links to an address, and address changes confirmed by them.

A link is `secrets.token_urlsafe(32)` (256 bits); the table keeps its SHA-256 and the address it
was sent to (`users.recovery.tokens` says why one SHA-256 is enough). The clear token exists only
in the `user.email_verification_requested` event (its outbox row is deleted once published,
`common.events.SECRET_EVENT_TYPES`) and in the email. A newer link for an account voids its older
ones, so at most one verification link per account is open.

An email change does not change `email`: the new address becomes `pending_email`, the link goes
there and the event names the old address too (the notifier tells it "your email is being
changed"). Using the link makes the pending address the account's `email`, unless another account
took it meanwhile (409, and the link stays usable).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from common.errors import BadRequest, Conflict
from common.identity import canonical_name
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from users.accounts import repository
from users.accounts.service import emit
from users.clock import Clock
from users.models import EmailVerificationToken, User
from users.recovery.tokens import new_token, take_link, token_hash

INVALID_LINK = "This verification link is invalid, used or expired; ask for a new one."
TAKEN = "That email is already taken."
# Why a link was sent: the notifier words the email after it ("registration" is the welcome).
Reason = Literal["registration", "change", "resend"]


@dataclass(frozen=True, slots=True)
class VerificationLinks:
    """How links are made: the clock (tests move it) and how long a link lives (24 hours)."""

    clock: Clock
    ttl: timedelta


@dataclass
class Verification:
    """The verification links of one request (built by `users.verification.dependencies`)."""

    db: AsyncSession
    links: VerificationLinks

    async def issue_link(
        self, user: User, email: str, reason: Reason, previous_email: str | None = None
    ) -> None:
        """A new link for `user` to `email`, voiding the account's older links."""
        db, now, token = self.db, self.links.clock(), new_token()
        await db.execute(
            delete(EmailVerificationToken).where(EmailVerificationToken.user_id == user.id)
        )
        db.add(
            EmailVerificationToken(
                token_hash=token_hash(token),
                user_id=user.id,
                email=email,
                created_at=now,
                expires_at=now + self.links.ttl,
            )
        )
        await db.flush()
        await emit(
            db,
            "user.email_verification_requested",
            {
                "user_id": str(user.id),
                "email": email,
                "username": user.username,
                "full_name": user.full_name,
                "token": token,
                "expires_at": (now + self.links.ttl).isoformat(),
                "reason": reason,
                "previous_email": previous_email,
            },
        )

    async def resend(self, user: User) -> bool:
        """A new link to what the account has to confirm: the pending address, else an
        unverified `email`. False (nothing sent) when there is nothing to confirm."""
        if user.pending_email is not None:
            await self.issue_link(user, user.pending_email, "resend")
            return True
        if not user.email_verified:
            await self.issue_link(user, user.email, "resend")
            return True
        return False

    async def change_email(self, user: User, new_email: str) -> None:
        """`PATCH /me` with `email`: the same canonical address is a spelling change, made at
        once; another address becomes `pending_email` (409 when an account has it) with a link to
        it and the old address told."""
        db = self.db
        key = canonical_name(new_email)
        if key == user.email_canonical:
            if user.pending_email is not None:  # back to the current address: the change is off
                user.pending_email = None
                await db.execute(
                    delete(EmailVerificationToken).where(EmailVerificationToken.user_id == user.id)
                )
            if new_email != user.email:
                user.email = new_email
                await db.flush()
                await emit(db, "user.updated", {"user_id": str(user.id), "changed": ["email"]})
            return
        if await repository.taken(db, email=new_email, username=None, other_than=user.id):
            raise Conflict(TAKEN)
        user.pending_email = new_email
        await db.flush()
        await self.issue_link(user, new_email, "change", previous_email=user.email)

    async def verify_email(self, token: str) -> uuid.UUID:
        """Use the link `token`: its address counts as verified, and a pending address becomes
        the account's `email`. Any token that is not an open link of an active account is one
        400."""
        db = self.db
        used = await take_link(db, EmailVerificationToken, token, self.links.clock())
        if used is None:
            raise BadRequest(INVALID_LINK)
        user, link = used
        key = canonical_name(link.email)
        changed = False
        if key != user.email_canonical:
            if user.pending_email is None or canonical_name(user.pending_email) != key:
                raise BadRequest(INVALID_LINK)  # an address the account no longer has or wants
            if await repository.taken(db, email=link.email, username=None, other_than=user.id):
                raise Conflict(TAKEN)  # rolled back with the rest: the link stays open
            user.email, user.email_canonical = user.pending_email, key
            user.pending_email = None
            changed = True
        user.email_verified = True
        try:
            await db.flush()
        except IntegrityError as exc:  # another account took the address since the check
            raise Conflict(TAKEN) from exc
        await emit(db, "user.email_verified", {"user_id": str(user.id), "email": user.email})
        if changed:
            await emit(db, "user.updated", {"user_id": str(user.id), "changed": ["email"]})
        return user.id
