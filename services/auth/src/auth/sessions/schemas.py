"""Request and response bodies of the session endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
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


LOGIN_NAME_LENGTH = 320
LOGIN_PASSWORD_LENGTH = 256
LOGIN_FIELD_LENGTH = 256
LOGIN_CLIENT_ID_LENGTH = 64


class LoginForm(BaseModel):
    """The OAuth 2.0 password form (the fields of FastAPI's OAuth2PasswordRequestForm), read by
    `common.forms.parse_form` as the gateway reads it."""

    model_config = ConfigDict(extra="forbid", title="Body_login_api_v1_auth_login_post")

    # Bounds: a login is a username or an email (at most 320 characters), a password at most 128
    # (registration); an empty one was sent on to users, which refused it, and the login answered
    # 503. Together they stay within the 16 KiB the gateway reads, even percent-encoded.
    grant_type: str | None = Field(default=None, pattern="^password$")
    username: str = Field(min_length=1, max_length=LOGIN_NAME_LENGTH)
    password: str = Field(
        min_length=1, max_length=LOGIN_PASSWORD_LENGTH, json_schema_extra={"format": "password"}
    )
    scope: str = Field(default="", max_length=LOGIN_FIELD_LENGTH)
    client_id: str | None = Field(default=None, max_length=LOGIN_CLIENT_ID_LENGTH)
    client_secret: str | None = Field(
        default=None, max_length=LOGIN_FIELD_LENGTH, json_schema_extra={"format": "password"}
    )


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    refresh_token: str = Field(min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH)


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    refresh_token: str | None = Field(
        default=None, min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH
    )


class SessionRead(BaseModel):
    """One of the caller's live sessions (API.md §10): a login and the refreshes since."""

    id: uuid.UUID
    created_at: datetime
    # The login, then each refresh (auth does not see the requests an access token makes).
    last_used_at: datetime
    # The client's address and User-Agent at the last use, as the gateway passed them on.
    ip: str | None
    user_agent: str | None
    amr: list[str]
    # The session of the token making this request.
    current: bool
