"""Reading an authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect Core §3.1.2.1).

Two kinds of refusal, in this order (RFC 6749 §4.1.2.1): while the client and its redirect URI are
not both known — an unknown `client_id`, a `redirect_uri` that is not exactly one the client
registered — nothing may be sent to the redirect URI (it could be anyone's), so the user gets an
error page (`ClientUnidentified`). Once both are known, every other refusal goes back to the
client's redirect URI as `error`, `error_description`, `state` and `iss` (`AuthorizationRefused`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from auth.clients.models import RegisteredClient
from auth.clients.repository import registered_client

PROMPTS = frozenset({"none", "login", "consent"})
# RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters, no padding.
S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_STATE_LENGTH = 1024
MAX_NONCE_LENGTH = 512
MAX_PARAMETERS = 32
MAX_VALUE_LENGTH = 4096


class ClientUnidentified(Exception):
    """The request names no registered client and redirect URI of it: an error page, never a
    redirect."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthorizationRefused(Exception):
    """An RFC 6749 §4.1.2.1 / OpenID Connect §3.1.2.6 error for the client's redirect URI."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: RegisteredClient
    redirect_uri: str
    state: str | None
    scopes: frozenset[str]
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    # The request as received, for the sign-in and consent forms' action (they post it back).
    query: str

    def refuse(self, error: str, description: str) -> AuthorizationRefused:
        return AuthorizationRefused(self.redirect_uri, self.state, error, description)

    @property
    def scope(self) -> str:
        return " ".join(sorted(self.scopes))


def redirect_to(redirect_uri: str, parameters: dict[str, str]) -> str:
    """`redirect_uri` with `parameters` added to its query (a registered query is kept)."""
    separator = "&" if "?" in redirect_uri else "?"
    return f"{redirect_uri}{separator}{urlencode(parameters)}"


def _single(items: Sequence[tuple[str, str]]) -> dict[str, str] | None:
    """The parameters, or None when one is repeated (RFC 6749 §3.1: each at most once)."""
    values: dict[str, str] = {}
    for name, value in items:
        if name in values:
            return None
        values[name] = value
    return values


async def read_authorization_request(
    db: AsyncSession, items: Sequence[tuple[str, str]], query: str
) -> AuthorizationRequest:
    """The request's parameters checked; raises `ClientUnidentified` or `AuthorizationRefused`."""
    if len(items) > MAX_PARAMETERS or any(len(value) > MAX_VALUE_LENGTH for _, value in items):
        raise ClientUnidentified("The sign-in request is too large.")
    names = [name for name, _ in items]
    for name in ("client_id", "redirect_uri"):
        if names.count(name) > 1:
            raise ClientUnidentified(f"The sign-in request repeats '{name}'.")
    raw = dict(items)
    client_id, redirect_uri = raw.get("client_id", ""), raw.get("redirect_uri", "")
    client = await registered_client(db, client_id) if client_id else None
    if client is None:
        raise ClientUnidentified("The app asking you to sign in is not registered here.")
    if redirect_uri not in client.redirect_uris:
        # Exact string match (RFC 9700 §2.1): no prefix, no normalisation, no default.
        raise ClientUnidentified("The app asked to send you to an address it did not register.")
    state = raw.get("state") or None
    if state is not None and len(state) > MAX_STATE_LENGTH:
        raise AuthorizationRefused(redirect_uri, None, "invalid_request", "state is too long.")

    def refused(error: str, description: str) -> AuthorizationRefused:
        return AuthorizationRefused(redirect_uri, state, error, description)

    params = _single(items)
    if params is None:
        raise refused("invalid_request", "A parameter is repeated.")
    if "request" in params:
        raise refused("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise refused("request_uri_not_supported", "request_uri is not supported.")
    response_type = params.get("response_type")
    if not response_type:
        raise refused("invalid_request", "response_type is required.")
    if response_type != "code":
        raise refused("unsupported_response_type", "Only response_type=code is supported.")
    if params.get("response_mode", "query") != "query":
        raise refused("invalid_request", "Only response_mode=query is supported.")
    challenge = params.get("code_challenge")
    if not challenge:
        raise refused("invalid_request", "PKCE is required: code_challenge is missing.")
    method = params.get("code_challenge_method")
    if method != "S256":
        raise refused("invalid_request", "PKCE code_challenge_method must be S256.")
    if S256_CHALLENGE.fullmatch(challenge) is None:
        raise refused("invalid_request", "code_challenge is not an S256 challenge.")
    scopes = frozenset(params.get("scope", "").split(" ")) - {""}
    if "openid" not in scopes:
        raise refused("invalid_scope", "The scope must include openid.")
    if not scopes <= client.allowed_scopes:
        unknown = " ".join(sorted(scopes - client.allowed_scopes))
        raise refused("invalid_scope", f"The client may not ask for: {unknown}")
    prompt = frozenset(params.get("prompt", "").split(" ")) - {""}
    if not prompt <= PROMPTS:
        raise refused("invalid_request", "prompt must be none, login and/or consent.")
    if "none" in prompt and len(prompt) > 1:
        raise refused("invalid_request", "prompt=none cannot be combined with another value.")
    max_age_text = params.get("max_age")
    max_age: int | None = None
    if max_age_text is not None:
        if not (max_age_text.isascii() and max_age_text.isdigit()) or len(max_age_text) > 9:
            raise refused("invalid_request", "max_age must be a number of seconds.")
        max_age = int(max_age_text)
    nonce = params.get("nonce") or None
    if nonce is not None and len(nonce) > MAX_NONCE_LENGTH:
        raise refused("invalid_request", "nonce is too long.")
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=state,
        scopes=scopes,
        nonce=nonce,
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
        query=query,
    )
