"""What the users API reads and writes (API.md §1 shapes)."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated

from common.identity import canonical_name
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
)

from users.passwords.policy import MAX_LENGTH, password_problem

USERNAME = re.compile(r"[A-Za-z0-9_-]{3,50}")
EMAIL_MAX_LENGTH = 320
# Role names are identifiers; anything else cannot name a role (and never reaches the database).
ROLE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"


def _nfkc(value: object) -> object:
    # Full-width and other compatibility forms become their plain letters before the checks,
    # so `ａｄａ` is the username `ada` (and collides with it) rather than a different name.
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


def _username(value: str) -> str:
    if not USERNAME.fullmatch(value):
        raise ValueError("must be 3–50 characters of letters, digits, '_' and '-'")
    return value


def _email(value: str) -> str:
    # Its canonical form (case-folded) is stored too, in a column of the same width.
    if len(canonical_name(value)) > EMAIL_MAX_LENGTH:
        raise ValueError(f"must be at most {EMAIL_MAX_LENGTH} characters")
    return value


def _full_name(value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 100:
        raise ValueError("must be 1–100 characters")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _password(value: str) -> str:
    problem = password_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Username = Annotated[str, BeforeValidator(_nfkc), AfterValidator(_username)]
FullName = Annotated[str, Field(max_length=200), AfterValidator(_full_name)]
# NFKC first, as for usernames: the full-width `ＡＤＡ@example.org` is stored as `ADA@example.org`.
Email = Annotated[
    EmailStr, BeforeValidator(_nfkc), Field(max_length=EMAIL_MAX_LENGTH), AfterValidator(_email)
]
# The bound before the policy: a 10 MB "password" is refused without hashing or normalising it.
NewPassword = Annotated[str, Field(max_length=MAX_LENGTH * 4), AfterValidator(_password)]
AnyPassword = Annotated[str, Field(max_length=MAX_LENGTH * 4)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    username: Username
    password: NewPassword
    full_name: FullName


class UserUpdate(BaseModel):
    """PATCH /users/me: only these three; anything else (roles, is_active, id...) is a 422."""

    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    username: Username | None = None
    full_name: FullName | None = None

    @field_validator("email", "username", "full_name", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null (leave the field out to keep its value)")
        return value


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: AnyPassword
    new_password: NewPassword


class RolesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[Annotated[str, Field(min_length=1, max_length=64, pattern=ROLE_NAME_PATTERN)]] = (
        Field(max_length=20)
    )


def as_utc(value: datetime) -> datetime:
    """Stored times are UTC; SQLite (embedded mode) hands them back without the zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str
    full_name: str
    is_active: bool
    email_verified: bool
    roles: list[str] = Field(validation_alias="role_names")
    created_at: Annotated[datetime, AfterValidator(as_utc)]


class UserPage(BaseModel):
    items: list[UserRead]
    total: int
    limit: int
    offset: int | None
    next_cursor: str | None
