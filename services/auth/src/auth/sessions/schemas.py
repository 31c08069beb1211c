"""Request and response bodies of the session endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Refresh tokens we issue are 43 characters; anything far longer is not one of ours.
MAX_REFRESH_TOKEN_LENGTH = 512


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    refresh_token: str = Field(min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH)


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    refresh_token: str | None = Field(
        default=None, min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH
    )
