"""Request and response bodies of the client registry (API.md §13)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from auth.clients.uris import MAX_URI_LENGTH, REDIRECT_URI_PATTERN, redirect_uri_problem

# What a client may ask for: the OpenID Connect scopes, and permissions (`area:action`), which its
# tokens carry only when the user holds them.
OIDC_SCOPES = ("openid", "profile", "email")
SCOPE_PATTERN = r"^(openid|profile|email|[a-z][a-z0-9_-]{0,31}:[a-z][a-z0-9_-]{0,31})$"
ClientType = Literal["public", "confidential"]


def _registrable(uri: str) -> str:
    problem = redirect_uri_problem(uri)
    if problem is not None:
        raise ValueError(f"the redirect URI {problem}")
    return uri


def _with_openid(scopes: list[str]) -> list[str]:
    if "openid" not in scopes:
        raise ValueError("must include 'openid'")
    return sorted(set(scopes))


def _distinct(uris: list[str]) -> list[str]:
    return list(dict.fromkeys(uris))


RedirectUri = Annotated[
    str,
    # The pattern is declared, and checked by _registrable (redirect_uri_problem), whose refusals
    # say what is wrong rather than quote the pattern.
    Field(
        min_length=1,
        max_length=MAX_URI_LENGTH,
        examples=["https://app.example.com/callback"],
        json_schema_extra={"pattern": REDIRECT_URI_PATTERN},
    ),
    AfterValidator(_registrable),
]
Scope = Annotated[str, Field(pattern=SCOPE_PATTERN)]


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    redirect_uris: Annotated[
        list[RedirectUri], Field(min_length=1, max_length=20), AfterValidator(_distinct)
    ]
    post_logout_redirect_uris: Annotated[
        list[RedirectUri], Field(max_length=20), AfterValidator(_distinct)
    ] = Field(default_factory=list)
    type: ClientType = Field(
        description="`public` (browser and native apps: no secret) or `confidential` (a server "
        "that keeps a secret; it authenticates with HTTP Basic at the token endpoint)."
    )
    # Strict: `"yes"` or `1` is refused as the document's boolean refuses it.
    first_party: bool = Field(
        default=False, strict=True, description="First-party clients skip the consent page."
    )
    scopes: Annotated[
        list[Scope],
        Field(min_length=1, max_length=32, json_schema_extra={"contains": {"const": "openid"}}),
        AfterValidator(_with_openid),
    ] = Field(default_factory=lambda: list(OIDC_SCOPES))


class ClientRead(BaseModel):
    client_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    type: ClientType
    first_party: bool
    scopes: list[str]
    created_at: datetime


class ClientCreated(ClientRead):
    """The registration's answer: a confidential client's secret appears here and nowhere else,
    ever (only its hash is kept)."""

    client_secret: str | None


class ClientList(BaseModel):
    items: list[ClientRead]
