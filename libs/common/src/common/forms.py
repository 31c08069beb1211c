"""One strict reader of form-encoded bodies, for the gateway and the service behind it alike.

The gateway keys its login limits on the account name it reads from the login body; auth checks
the password of the name it reads. If the two read one body differently (the first of two
`username` fields against the last, a multipart body, an encoding one side repairs), an attacker
gets a fresh limit for every guess. So both call `parse_form` on the same bytes, and it accepts
only one reading: `application/x-www-form-urlencoded` (UTF-8), each field once, names from a
known set, strict percent-encoding and UTF-8, a small size. Anything else is refused, by the
gateway before it is forwarded.

JSON bodies the gateway keys a limit on (the second login step's `mfa_token`, a reset link's
`email`) are read with `parse_json_object`, by the gateway and, where the service would read the
body otherwise, by the service too: `application/json`, one object, each key once (Pydantic lets
the last of repeated keys win; the gateway's reader would have to pick one too), valid UTF-8.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
# The fields of the OAuth 2.0 password form (RFC 6749 §4.3, FastAPI's OAuth2PasswordRequestForm).
LOGIN_FIELDS = frozenset(
    {"grant_type", "username", "password", "scope", "client_id", "client_secret"}
)
# The hosted sign-in page's form (auth, API.md §13): read by the gateway for the login limits as
# auth reads it (common.pages' reader, with these names), so both count the same account.
SIGN_IN_FIELDS = frozenset({"username", "password", "csrf_token"})
# ... and its second-factor step (the `mfa_token` of the password step and a code, or the
# `credential` a passkey signed).
SECOND_FACTOR_FIELDS = frozenset({"mfa_token", "code", "credential", "csrf_token"})
# A login form is a name, a password and a few short fields.
LOGIN_FORM_BYTES = 16 * 1024
# The second login step's JSON body is a ticket and a code: far less than this.
MFA_LOGIN_BYTES = 4 * 1024

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class FormRefused(Exception):
    """The body is not a form this reader accepts: `status` 413, 415 or 422."""

    def __init__(self, status: int, detail: str, errors: Sequence[Mapping[str, str]] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


def media_type_ok(content_type: str | bytes | None) -> bool:
    """`application/x-www-form-urlencoded`, with no parameter but `charset=utf-8`."""
    if content_type is None:
        return False
    text = content_type.decode("latin-1") if isinstance(content_type, bytes) else content_type
    media, _, parameters = text.partition(";")
    if media.strip().lower() != FORM_TYPE:
        return False
    for parameter in parameters.split(";") if parameters.strip() else ():
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _decode(raw: bytes) -> str:
    """`+` is a space; `%` must be followed by two hex digits; the result must be UTF-8."""
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        if _BAD_ESCAPE.search(raw):
            raise ValueError("a % not followed by two hex digits")
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8")


def parse_form(
    body: bytes,
    content_type: str | bytes | None,
    *,
    fields: frozenset[str] | None = LOGIN_FIELDS,
    max_fields: int = len(LOGIN_FIELDS),
    max_bytes: int = LOGIN_FORM_BYTES,
) -> dict[str, str]:
    """The fields of a form body, each named once. `fields` None accepts any names (up to
    `max_fields`). Raises `FormRefused`."""
    if not media_type_ok(content_type):
        raise FormRefused(415, f"The body must be {FORM_TYPE} (UTF-8).")
    if len(body) > max_bytes:
        raise FormRefused(413, f"The form body exceeds {max_bytes} bytes.")
    values: dict[str, str] = {}
    if not body:
        return values
    pairs = body.split(b"&")
    if len(pairs) > max_fields:
        raise FormRefused(422, f"The form has more than {max_fields} fields.", _body_error())
    for pair in pairs:
        raw_name, equals, raw_value = pair.partition(b"=")
        try:
            name = _decode(raw_name)
            value = _decode(raw_value)
        except (ValueError, UnicodeDecodeError):
            raise FormRefused(
                422, "The form is not valid percent-encoded UTF-8.", _body_error()
            ) from None
        if not equals or not name:
            raise FormRefused(422, "Every form field is name=value.", _body_error())
        if fields is not None and name not in fields:
            raise FormRefused(422, "The form has an unknown field.", _field_error(name, "unknown"))
        if name in values:
            raise FormRefused(
                422, f"The '{name}' field is repeated.", _field_error(name, "repeated")
            )
        values[name] = value
    return values


def _body_error() -> tuple[Mapping[str, str], ...]:
    return ({"field": "body", "message": "Not a well-formed form body."},)


def _field_error(name: str, what: str) -> tuple[Mapping[str, str], ...]:
    shown = name if name.isascii() and name.isprintable() and len(name) <= 40 else "body"
    return ({"field": shown, "message": f"The field is {what}."},)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key is repeated")
    return dict(pairs)


def parse_json_object(
    body: bytes, content_type: str | bytes | None, *, max_bytes: int = LOGIN_FORM_BYTES
) -> dict[str, Any]:
    """The members of a JSON object body, each key once. Raises `FormRefused` (415 for another
    media type, 413 past `max_bytes`, 422 for anything but one well-formed object)."""
    text = content_type.decode("latin-1") if isinstance(content_type, bytes) else content_type
    if (text or "").split(";", 1)[0].strip().lower() != JSON_TYPE:
        raise FormRefused(415, f"The body must be {JSON_TYPE}.")
    if len(body) > max_bytes:
        raise FormRefused(413, f"The body exceeds {max_bytes} bytes.")
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, a repeated key, too deep
        document = None
    if not isinstance(document, dict):
        raise FormRefused(
            422,
            "The body must be one JSON object, each key once.",
            ({"field": "body", "message": "Not one JSON object with each key once."},),
        )
    return document
