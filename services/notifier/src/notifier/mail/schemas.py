"""The event data the notifier acts on, validated before anything is sent."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class UserRegistered(BaseModel):
    """`user.registered` data (API.md §6), plus the id of the envelope that carried it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    user_id: uuid.UUID
    email: EmailStr
    username: str = Field(min_length=1, max_length=50)
    full_name: str = Field(min_length=1, max_length=100)
    # users writes the account's first verification link with the registration: the welcome
    # email is then the one of that `user.email_verification_requested`, which carries the link.
    verification_follows: bool = False


class PasswordResetRequested(BaseModel):
    """`user.password_reset_requested` data (API.md §12): the link's clear token included."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    user_id: uuid.UUID
    email: EmailStr
    username: str = Field(min_length=1, max_length=50)
    full_name: str = Field(min_length=1, max_length=100)
    token: str = Field(pattern=r"^[A-Za-z0-9_-]{43}$")
    expires_at: datetime


class PasswordReset(BaseModel):
    """`user.password_reset` data: the notice goes to the account's address."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    user_id: uuid.UUID
    email: EmailStr
    username: str = Field(min_length=1, max_length=50)
    full_name: str = Field(min_length=1, max_length=100)


class MfaNotice(BaseModel):
    """`user.mfa_enabled`, `user.mfa_disabled` and `user.mfa_recovery_code_used` data (API.md
    §12), from auth's outbox: the notice goes to the account's address."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    user_id: uuid.UUID
    email: EmailStr
    username: str = Field(min_length=1, max_length=50)
    full_name: str = Field(min_length=1, max_length=100)
    # Only in `user.mfa_recovery_code_used`.
    recovery_codes_left: int = Field(default=0, ge=0, le=100)


class EmailVerificationRequested(BaseModel):
    """`user.email_verification_requested` data (API.md §12): the link's clear token, the address
    it goes to, why (the registration's link comes in the welcome email), and for an email change
    the old address, which is told."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    user_id: uuid.UUID
    email: EmailStr
    username: str = Field(min_length=1, max_length=50)
    full_name: str = Field(min_length=1, max_length=100)
    token: str = Field(pattern=r"^[A-Za-z0-9_-]{43}$")
    expires_at: datetime
    reason: Literal["registration", "change", "resend"]
    previous_email: EmailStr | None = None


class AccountLockedOut(BaseModel):
    """`user.locked_out` data (API.md §10, §12): the notice carries a reset link's clear token."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    user_id: uuid.UUID
    email: EmailStr
    username: str = Field(min_length=1, max_length=50)
    full_name: str = Field(min_length=1, max_length=100)
    locked_until: datetime
    token: str = Field(pattern=r"^[A-Za-z0-9_-]{43}$")
    expires_at: datetime
