"""The event data the notifier acts on, validated before anything is sent."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class AccountEvent(BaseModel):
    """What every account event carries (API.md §6, §12): who the email goes to and how to greet
    them, plus the id of the envelope that carried it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    user_id: uuid.UUID
    email: EmailStr
    username: str = Field(min_length=1, max_length=50)
    full_name: str = Field(min_length=1, max_length=100)


class LinkEvent(AccountEvent):
    """An account event whose email carries a one-time link: the link's clear token."""

    token: str = Field(pattern=r"^[A-Za-z0-9_-]{43}$")
    expires_at: datetime


class UserRegistered(AccountEvent):
    """`user.registered` data (API.md §6)."""

    # users writes the account's first verification link with the registration: the welcome
    # email is then the one of that `user.email_verification_requested`, which carries the link.
    verification_follows: bool = False


class PasswordResetRequested(LinkEvent):
    """`user.password_reset_requested` data (API.md §12)."""


class PasswordReset(AccountEvent):
    """`user.password_reset` data: the notice goes to the account's address."""


class MfaNotice(AccountEvent):
    """`user.mfa_enabled`, `user.mfa_disabled` and `user.mfa_recovery_code_used` data (API.md
    §12), from auth's outbox: the notice goes to the account's address."""

    # Only in `user.mfa_recovery_code_used`.
    recovery_codes_left: int = Field(default=0, ge=0, le=100)


class EmailVerificationRequested(LinkEvent):
    """`user.email_verification_requested` data (API.md §12): the address the link goes to, why
    (the registration's link comes in the welcome email), and for an email change the old
    address, which is told."""

    reason: Literal["registration", "change", "resend"]
    previous_email: EmailStr | None = None


class AccountLockedOut(LinkEvent):
    """`user.locked_out` data (API.md §10, §12): the notice carries a reset link's clear token."""

    locked_until: datetime
