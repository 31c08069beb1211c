"""The bodies of the email verification routes (API.md §8)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, StrictStr


class VerifyEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Any string: one that is not a token we could have issued is a 400 like an unknown one.
    token: StrictStr


class Accepted(BaseModel):
    detail: str
