"""What the users API reads and writes (API.md §1 shapes)."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from common.identity import canonical_name
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
)

from users.passwords.policy import MAX_LENGTH, MIN_LENGTH, password_problem

# The rules are declared as Field constraints (they are then in the OpenAPI document, for tools),
# and checked again by the validators below.
USERNAME_PATTERN = r"^[A-Za-z0-9_-]{3,50}$"
USERNAME = re.compile(USERNAME_PATTERN.strip("^$"))
EMAIL_MAX_LENGTH = 320


def _any_case(name: str) -> str:
    return "".join(f"[{ch.lower()}{ch.upper()}]" if ch.isalpha() else re.escape(ch) for ch in name)


# What the address check (email-validator) refuses beyond the `email` format: a domain that is or
# ends in a special-use name (`.test`, `.local`, ...). Declared, so that the document does not
# offer `ada@mail.test` (found by schemathesis: a 422 for a schema-valid PATCH /me).
EMAIL_PATTERN = (
    r"^(?!.*@(?:.*\.)?(?:" + "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES) + r")$)"
)
# Role names are identifiers; anything else cannot name a role (and never reaches the database).
ROLE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"
# The roles the users migration seeds (API.md §4); there are no others.
RoleName = Literal["user", "admin"]
NO_NUL_PATTERN = r"^[^\x00]*$"
# `full_name` as `_full_name` takes it: 1–100 characters without control characters once the
# whitespace around them (what `str.strip` removes, spelled out, so that every regex dialect
# reads it alike) is stripped.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = r"\x00-\x1f\x7f-\x9f"
FULL_NAME_PATTERN = (
    rf"^[{_SPACE}]*[^{_SPACE}{_CONTROL}](?:[^{_CONTROL}]{{0,98}}[^{_SPACE}{_CONTROL}])?[{_SPACE}]*$"
)


def _absent(schema: dict[str, Any]) -> None:
    """An optional field that is left out, never null: no `default: null` in its schema, and
    not the `null` alternative of `X | None` (a plain None, so that a refusal names the field
    itself, not the union's member: schemathesis saw `email.function-after[_email(), ...]`)."""
    schema.pop("default", None)
    alternatives = schema.pop("anyOf", None)
    if alternatives is not None:
        [kept] = [one for one in alternatives if one != {"type": "null"}]
        schema.update(kept)


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


# The pattern applies after NFKC: `ａｄａ` is `ada` (the document states the canonical form).
Username = Annotated[
    str,
    Field(min_length=3, max_length=50, pattern=USERNAME_PATTERN),
    BeforeValidator(_nfkc),
    AfterValidator(_username),
]
FullName = Annotated[
    str,
    Field(
        max_length=200,
        pattern=FULL_NAME_PATTERN,
        description="1–100 characters, no control characters; surrounding whitespace is stripped.",
    ),
    AfterValidator(_full_name),
]
# NFKC first, as for usernames: the full-width `ＡＤＡ@example.org` is stored as `ADA@example.org`.
Email = Annotated[
    EmailStr,
    BeforeValidator(_nfkc),
    Field(max_length=EMAIL_MAX_LENGTH, json_schema_extra={"pattern": EMAIL_PATTERN}),
    AfterValidator(_email),
]
# Lengths before the policy: a 10 MB "password" is refused without hashing or normalising it.
NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        pattern=NO_NUL_PATTERN,
        description=f"{MIN_LENGTH}–{MAX_LENGTH} characters, every one significant; not one of "
        "the common passwords.",
    ),
    AfterValidator(_password),
]
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

    # Left out keeps the value; null is refused (below), so the document does not offer it.
    email: Email | None = Field(default=None, json_schema_extra=_absent)
    username: Username | None = Field(default=None, json_schema_extra=_absent)
    full_name: FullName | None = Field(default=None, json_schema_extra=_absent)

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

    roles: list[RoleName] = Field(max_length=20)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str
    full_name: str
    is_active: bool
    email_verified: bool
    # An address change waiting for its verification link (API.md §8), else null.
    pending_email: str | None
    roles: list[str] = Field(validation_alias="role_names")
    created_at: datetime


class UserPage(BaseModel):
    items: list[UserRead]
    total: int
    limit: int
    offset: int | None
    next_cursor: str | None
