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
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from users.accounts import repository
from users.accounts.service import emit
from users.clock import Clock
from users.models import EmailVerificationToken, User
from users.recovery.tokens import new_token, token_hash, well_formed

INVALID_LINK = "This verification link is invalid, used or expired; ask for a new one."
TAKEN = "That email is already taken."
# Why a link was sent: the notifier words the email after it ("registration" is the welcome).
Reason = Literal["registration", "change", "resend"]


@dataclass(frozen=True, slots=True)
class VerificationLinks:
    """How links are made: the clock (tests move it) and how long a link lives (24 hours)."""

    clock: Clock
    ttl: timedelta


async def issue_link(
    db: AsyncSession,
    links: VerificationLinks,
    user: User,
    email: str,
    reason: Reason,
    previous_email: str | None = None,
) -> None:
    """A new link for `user` to `email`, voiding the account's older links."""
    now = links.clock()
    token = new_token()
    await db.execute(
        delete(EmailVerificationToken).where(EmailVerificationToken.user_id == user.id)
    )
    db.add(
        EmailVerificationToken(
            token_hash=token_hash(token),
            user_id=user.id,
            email=email,
            created_at=now,
            expires_at=now + links.ttl,
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
            "expires_at": (now + links.ttl).isoformat(),
            "reason": reason,
            "previous_email": previous_email,
        },
    )


async def resend(db: AsyncSession, links: VerificationLinks, user: User) -> bool:
    """A new link to what the account has to confirm: the pending address, else an unverified
    `email`. False (nothing sent) when there is nothing to confirm."""
    if user.pending_email is not None:
        await issue_link(db, links, user, user.pending_email, "resend")
        return True
    if not user.email_verified:
        await issue_link(db, links, user, user.email, "resend")
        return True
    return False


async def change_email(
    db: AsyncSession, links: VerificationLinks, user: User, new_email: str
) -> None:
    """`PATCH /me` with `email`: the same canonical address is a spelling change, made at once;
    another address becomes `pending_email` (409 when an account has it) with a link to it and
    the old address told."""
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
    await issue_link(db, links, user, new_email, "change", previous_email=user.email)


async def verify_email(db: AsyncSession, clock: Clock, token: str) -> uuid.UUID:
    """Use the link `token`: its address counts as verified, and a pending address becomes the
    account's `email`. Any token that is not an open link of an active account is one 400."""
    if not well_formed(token):
        raise BadRequest(INVALID_LINK)
    # Deleting the row takes it: of two requests with one token, only one finds it.
    used = (
        await db.execute(
            delete(EmailVerificationToken)
            .where(EmailVerificationToken.token_hash == token_hash(token))
            .returning(
                EmailVerificationToken.user_id,
                EmailVerificationToken.email,
                EmailVerificationToken.expires_at,
            )
        )
    ).one_or_none()
    if used is None:
        raise BadRequest(INVALID_LINK)
    if used.expires_at <= clock():  # a UTCDateTime column: aware on SQLite too
        raise BadRequest(INVALID_LINK)
    user = await repository.by_id(db, used.user_id, lock=True)
    if user is None or not user.is_active:
        raise BadRequest(INVALID_LINK)
    key = canonical_name(used.email)
    changed = False
    if key != user.email_canonical:
        if user.pending_email is None or canonical_name(user.pending_email) != key:
            raise BadRequest(INVALID_LINK)  # an address the account no longer has or wants
        if await repository.taken(db, email=used.email, username=None, other_than=user.id):
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


async def link_is_open(db: AsyncSession, clock: Clock, token: str) -> bool:
    """Whether `token` is an open, unexpired verification link (the page's first look: a GET
    never verifies, as mail scanners fetch links)."""
    if not well_formed(token):
        return False
    expires_at = await db.scalar(
        select(EmailVerificationToken.expires_at).where(
            EmailVerificationToken.token_hash == token_hash(token)
        )
    )
    return expires_at is not None and expires_at > clock()
