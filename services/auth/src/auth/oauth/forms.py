"""Reading form-encoded OAuth requests by hand, so every malformed one gets an RFC answer."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.datastructures import FormData
from starlette.requests import Request

from auth.oauth.errors import OAuthError, invalid_client, invalid_request

FORM_TYPE = "application/x-www-form-urlencoded"
# Bounds that keep every well-formed request under MAX_BODY_BYTES (1 MiB), even percent-encoded at
# 12 bytes a character; the API document declares them. Our tokens are under 2 KiB, and no
# request needs more than a few parameters.
MAX_PARAMETER_LENGTH = 10 * 1024
MAX_PARAMETERS = 8
MAX_NAME_LENGTH = 64


@dataclass(frozen=True, slots=True)
class OAuthForm:
    values: dict[str, str]

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise invalid_request(f"The '{name}' parameter is required.")
        return value


@dataclass(frozen=True, slots=True)
class PresentedClient:
    client_id: str
    secret: str


async def read_form(request: Request) -> OAuthForm:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise invalid_request(f"The request must be {FORM_TYPE}.")
    try:
        form: FormData = await request.form()
    except Exception as exc:  # any parser failure is the client's malformed body
        raise invalid_request("The form body cannot be parsed.") from exc
    if len(form.multi_items()) > MAX_PARAMETERS:
        raise invalid_request(f"At most {MAX_PARAMETERS} parameters.")
    values: dict[str, str] = {}
    for name in set(form.keys()):
        if len(name) > MAX_NAME_LENGTH:
            raise invalid_request("A parameter name is too long.")
        entries = form.getlist(name)
        if len(entries) > 1:
            raise invalid_request(f"The '{name}' parameter is repeated.")
        value = entries[0]
        if not isinstance(value, str) or len(value) > MAX_PARAMETER_LENGTH:
            raise invalid_request(f"The '{name}' parameter is malformed.")
        values[name] = value
    return OAuthForm(values)


def _basic_credentials(header: str) -> PresentedClient:
    try:
        decoded = base64.b64decode(header.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise invalid_client("Malformed HTTP Basic credentials.") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise invalid_client("Malformed HTTP Basic credentials.")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return PresentedClient(unquote(client_id), unquote(secret))


def presented_client(request: Request, form: OAuthForm) -> PresentedClient | None:
    """Client credentials from HTTP Basic or the form (never both), or None."""
    header = request.headers.get("authorization")
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None if form_secret is None else PresentedClient(form_id or "", form_secret)
        if form_secret is not None:
            raise invalid_request("Use one client authentication method, not two.")
        return _basic_credentials(value.strip())
    if form_secret is not None:
        if form_id is None:
            raise invalid_client("client_secret without client_id.")
        return PresentedClient(form_id, form_secret)
    return None


def unsupported(message: str) -> OAuthError:
    return OAuthError("unsupported_grant_type", message)
