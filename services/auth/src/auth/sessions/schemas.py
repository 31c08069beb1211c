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


class LoginForm(BaseModel):
    """The OAuth 2.0 password form (the fields of FastAPI's OAuth2PasswordRequestForm), read by
    `common.forms.parse_form` as the gateway reads it."""

    model_config = ConfigDict(extra="forbid", title="Body_login_api_v1_auth_login_post")

    grant_type: str | None = Field(default=None, pattern="^password$")
    username: str
    password: str = Field(json_schema_extra={"format": "password"})
    scope: str = ""
    client_id: str | None = None
    client_secret: str | None = Field(default=None, json_schema_extra={"format": "password"})


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    refresh_token: str = Field(min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH)


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    refresh_token: str | None = Field(
        default=None, min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH
    )
