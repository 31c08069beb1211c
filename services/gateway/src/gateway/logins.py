"""What the login and recovery limits count (API.md §11): the account a request tries, read
exactly as the service behind will read it, or a refusal.

The login form and the token endpoint's form go through `common.forms.parse_form`, the reader
auth's login route uses too; the name is `common.identity.canonical_name`, the form users matches
accounts by. A body the reader refuses is refused here (4xx) and never forwarded: what auth
would read differently from the gateway cannot reach it. The JSON bodies — the reset link
request's `email`, the second login step's `mfa_token` — are read with
`common.forms.parse_json_object` (one object, each key once, UTF-8), the reader auth's second
step uses too.

The second step names no account, only a ticket: its `mfa_token` is `<user id>.<random>`, and the
limits count the user id part, read without a lookup. auth stores only the hash of the whole
token, so a ticket with another user's id in front is unknown there: a forged prefix spends the
forger's own key and checks no code.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from common.forms import (
    LOGIN_FORM_BYTES,
    MFA_LOGIN_BYTES,
    SECOND_FACTOR_FIELDS,
    SIGN_IN_FIELDS,
    FormRefused,
    parse_form,
    parse_json_object,
)
from common.identity import canonical_name

from gateway.problems import Refused
from gateway.routes import Counted, Route

# The token endpoint's form: any field names (its grants differ), each once, a few of them.
TOKEN_FORM_FIELDS = 16
# Longer account names are cut (merging counters, never splitting them).
MAX_NAME = 320
TITLES = {413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content"}


def refusal(refused: FormRefused) -> Refused:
    return Refused(refused.status, TITLES[refused.status], refused.detail, errors=refused.errors)


def login_keys(
    route: Route,
    address: str,
    body: bytes,
    content_type: bytes | None,
    authorization: bytes | None,
    subject: str | None,
) -> tuple[str | None, str | None]:
    """The login limits' keys for this request: client IP + the account (None when the body
    names none), and the client IP (None when the request is no login at all: a refresh or
    code grant on the token endpoint). Raises `Refused` for a body not read as auth reads it."""
    counted = route.counted
    if counted is Counted.SUBJECT:
        return f"{address}:s:{subject}", address
    if counted is Counted.ADDRESS:
        return None, address
    if counted is Counted.RECOVERY:
        return f"{address}:r:{recovery_address(body, content_type)}", None
    if counted is Counted.MFA:
        return f"{address}:m:{mfa_account(body, content_type)}", address
    if counted is Counted.SIGN_IN_MFA:
        return f"{address}:m:{sign_in_mfa_account(body, content_type)}", address
    if counted is Counted.RECOVERY_SUBJECT:
        return f"{address}:v:{subject}", None
    try:
        if counted is Counted.FORM:
            form = parse_form(body, content_type)
        elif counted is Counted.SIGN_IN:
            form = parse_form(
                body,
                content_type,
                fields=SIGN_IN_FIELDS,
                max_fields=len(SIGN_IN_FIELDS),
                max_bytes=LOGIN_FORM_BYTES,
            )
        else:
            form = parse_form(
                body,
                content_type,
                fields=None,
                max_fields=TOKEN_FORM_FIELDS,
                max_bytes=LOGIN_FORM_BYTES,
            )
    except FormRefused as refused:
        raise refusal(refused) from None
    if counted is Counted.TOKEN:
        grant = form.get("grant_type")
        if grant == "client_credentials":
            return f"{address}:c:{client_id(form, authorization)}", address
        if grant != "password":
            return None, None  # not a login: refresh tokens and codes are not guessable
    name = canonical_name(form.get("username", ""))[:MAX_NAME]
    return f"{address}:n:{name}", address


def client_id(form: dict[str, str], authorization: bytes | None) -> str:
    """The client as auth's token endpoint reads it: HTTP Basic (its parts form-urlencoded,
    RFC 6749 §2.3.1) when the header is Basic, else the form's `client_id`."""
    if authorization is not None:
        scheme, _, value = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip().encode("ascii"), validate=True)
                name, _, _ = decoded.decode("utf-8").partition(":")
            except (binascii.Error, UnicodeError, ValueError):
                return ""
            return unquote(name)[:MAX_NAME]
    return form.get("client_id", "")[:MAX_NAME]


def _not_a_string(field: str) -> Refused:
    detail = f"`{field}` must be a string."
    return Refused(422, TITLES[422], detail, errors=({"field": field, "message": detail},))


def recovery_address(body: bytes, content_type: bytes | None) -> str:
    """The canonical `email` of a reset link request's JSON body (users reads the same body with
    Pydantic: the last of repeated keys would win there, so a repeated key is refused here)."""
    try:
        document = parse_json_object(body, content_type)
    except FormRefused as refused:
        raise refusal(refused) from None
    email = document.get("email")
    if not isinstance(email, str):
        raise _not_a_string("email")
    return canonical_name(email)[:MAX_NAME]


def sign_in_mfa_account(body: bytes, content_type: bytes | None) -> str:
    """The account of the hosted sign-in page's second step: as `mfa_account`, from its form
    (read as auth reads it: `parse_form` with the page's field names)."""
    try:
        form = parse_form(
            body,
            content_type,
            fields=SECOND_FACTOR_FIELDS,
            max_fields=len(SECOND_FACTOR_FIELDS),
            max_bytes=LOGIN_FORM_BYTES,
        )
    except FormRefused as refused:
        raise refusal(refused) from None
    return form.get("mfa_token", "").partition(".")[0][:MAX_NAME]


def mfa_account(body: bytes, content_type: bytes | None) -> str:
    """The account of a second login step: the part of its `mfa_token` before the first `.`,
    read from the body exactly as auth reads it (`parse_json_object`, at most
    `MFA_LOGIN_BYTES`)."""
    try:
        document = parse_json_object(body, content_type, max_bytes=MFA_LOGIN_BYTES)
    except FormRefused as refused:
        raise refusal(refused) from None
    token = document.get("mfa_token")
    if not isinstance(token, str):
        raise _not_a_string("mfa_token")
    return token.partition(".")[0][:MAX_NAME]
