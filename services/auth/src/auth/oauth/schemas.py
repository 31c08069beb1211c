"""What the token and revocation endpoints read and answer, for the API document: their forms are
parsed by hand (forms.py, so that every malformed one gets an RFC 6749 answer), so these models
only declare them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from auth.oauth.forms import FORM_TYPE, MAX_NAME_LENGTH, MAX_PARAMETER_LENGTH, MAX_PARAMETERS
from auth.sessions.schemas import MAX_REFRESH_TOKEN_LENGTH, TokenPair

# The gateway reads token requests whole, up to 16 KiB (they may be password grants): the bounds
# keep a request of these fields within that, even percent-encoded. Other parameters are ignored,
# but none is declared: no client needs to send one.
CLIENT_ID_LENGTH = 64  # auth.clients.models
SECRET_LENGTH = 256
SCOPE_LENGTH = 512
AUDIENCE_LENGTH = 100

# Each parameter once, a string (a repeated one is refused), unknown ones ignored (RFC 6749 §3.2),
# within the bounds forms.py enforces.
RevocationParameter = Annotated[str, Field(max_length=MAX_PARAMETER_LENGTH)]
FORM_BOUNDS: dict[str, Any] = {
    "maxProperties": MAX_PARAMETERS,
    "propertyNames": {"maxLength": MAX_NAME_LENGTH},
}

ErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
]


def _absent(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional(max_length: int, description: str) -> Any:
    return Field(
        default=None, max_length=max_length, description=description, json_schema_extra=_absent
    )


class AuthorizationCodeGrant(BaseModel):
    """Redeem an OpenID Connect authorization code (API.md §13): PKCE `code_verifier`, the
    `redirect_uri` of the request; a public client names itself with `client_id`, a confidential
    one authenticates with HTTP Basic (or `client_id` + `client_secret` here)."""

    model_config = ConfigDict(extra="forbid", title="authorization_code grant")

    grant_type: Literal["authorization_code"]
    code: str = Field(min_length=1, max_length=512)
    redirect_uri: str = Field(min_length=1, max_length=2000)
    code_verifier: str = Field(min_length=43, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$")
    client_id: str | SkipJsonSchema[None] = _optional(CLIENT_ID_LENGTH, "A public client's id.")
    client_secret: str | SkipJsonSchema[None] = _optional(SECRET_LENGTH, "client_secret_post")


class RefreshTokenGrant(BaseModel):
    """Rotate a refresh token: a first-party one without client authentication; an OpenID
    Connect client's only by that client (a confidential one authenticated)."""

    model_config = ConfigDict(extra="forbid", title="refresh_token grant")

    grant_type: Literal["refresh_token"]
    refresh_token: str = Field(min_length=1, max_length=MAX_REFRESH_TOKEN_LENGTH)
    client_id: str | SkipJsonSchema[None] = _optional(CLIENT_ID_LENGTH, "A public client's id.")
    client_secret: str | SkipJsonSchema[None] = _optional(SECRET_LENGTH, "client_secret_post")


class ClientCredentialsGrant(BaseModel):
    """A service token for a service client, authenticated with HTTP Basic or with
    `client_id` + `client_secret` here (one of the two)."""

    model_config = ConfigDict(extra="forbid", title="client_credentials grant")

    grant_type: Literal["client_credentials"]
    client_id: str | SkipJsonSchema[None] = _optional(CLIENT_ID_LENGTH, "client_secret_post")
    client_secret: str | SkipJsonSchema[None] = _optional(SECRET_LENGTH, "client_secret_post")
    scope: str | SkipJsonSchema[None] = _optional(
        SCOPE_LENGTH, "Space-separated; by default the client's own scopes."
    )
    audience: str | SkipJsonSchema[None] = _optional(
        AUDIENCE_LENGTH, "The service the token is for; needed when the client has several."
    )
    resource: str | SkipJsonSchema[None] = _optional(AUDIENCE_LENGTH, "Same as `audience`.")


class RevocationRequest(BaseModel):
    """RFC 7009: the token to revoke. A hint the server does not know is ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra=FORM_BOUNDS)
    __pydantic_extra__: dict[str, RevocationParameter] = Field(init=False)

    token: str = Field(min_length=1, max_length=MAX_PARAMETER_LENGTH)
    token_type_hint: str | SkipJsonSchema[None] = _optional(
        MAX_PARAMETER_LENGTH, "`access_token` or `refresh_token`."
    )


class OidcTokens(TokenPair):
    """The answer to an `authorization_code` grant: a `TokenPair`, the ID token and the scope
    granted."""

    id_token: str
    scope: str


class ServiceToken(BaseModel):
    """The answer to a `client_credentials` grant: no refresh token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    scope: str


class Revoked(BaseModel):
    """RFC 7009 §2.2: an empty object, for known and unknown tokens alike."""

    model_config = ConfigDict(extra="forbid")


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2 error answer (`application/json`, not problem+json, by contract)."""

    error: ErrorCode
    error_description: str


def form_body(*models: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring a required form body: one of `models`."""
    schemas = [model.model_json_schema() for model in models]
    schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
    return {"requestBody": {"required": True, "content": {FORM_TYPE: {"schema": schema}}}}


def oauth_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "RFC 6749 §5.2 error (`invalid_request`, `invalid_grant`, ...)",
        401: "`invalid_client`: client authentication failed (`WWW-Authenticate: Basic`)",
    }
    return {
        status: {"description": descriptions[status], "model": OAuthErrorBody}
        for status in statuses
    }
