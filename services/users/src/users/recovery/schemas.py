"""The bodies of the password recovery routes (API.md §8)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, StrictStr

from users.accounts.schemas import Email, NewPassword


class ForgotPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class ResetPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Any string: one that is not a token we could have issued is a 400 like an unknown one.
    token: StrictStr
    new_password: NewPassword
