"""The route table: which paths reach which service, and which need a token (API.md §1).

Anything not in the table — `/internal/*` included — is a 404 at the gateway. Paths are checked in
their raw form: encoded separators or dots, `..` segments, empty segments and backslashes never
reach an upstream, so no path can climb out of the prefix it matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from common.enums import IdentityEnum


class Access(IdentityEnum):
    PUBLIC = "public"
    BEARER = "bearer"
    LOGIN = "login"  # public, its body read whole for the login limits' key


class Counted(IdentityEnum):
    """What a route counts under the login limits (API.md §11): each is a password oracle."""

    NONE = "none"
    FORM = "form"  # the login form: client IP + the canonical username, and client IP alone
    SIGN_IN = "sign_in"  # the hosted sign-in page's form (API.md §13): counted as FORM
    SIGN_IN_MFA = "sign_in_mfa"  # its second-factor form: counted as MFA
    TOKEN = "token"  # the token endpoint: password grants as FORM, client_credentials by client_id
    SUBJECT = "subject"  # a bearer route that checks a password: client IP + the token's `sub`
    ADDRESS = "address"  # client IP alone (the account is not in the request)
    RECOVERY = "recovery"  # the recovery limit: client IP + the JSON body's canonical `email`
    MFA = "mfa"  # the second login step: client IP + the account its `mfa_token` names
    # The recovery limit on a bearer route that mails the account (a verification resend):
    # client IP + the token's `sub`, the account whose address users sends to.
    RECOVERY_SUBJECT = "recovery_subject"


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # metrics label
    upstream: str  # "auth" | "users"
    access: Access
    counted: Counted = Counted.NONE
    # A hosted page (API.md §8, §13): a browser's navigation or form post, so the gateway's own
    # refusals (429, 503, 413 …) are an HTML page there, not problem+json.
    page: bool = False


# (method or None for any, exact path or prefix ending in "/", route)
_EXACT: dict[tuple[str, str], Route] = {
    ("POST", "/api/v1/users/"): Route("users.register", "users", Access.PUBLIC),
    ("GET", "/api/v1/users/"): Route("users.list", "users", Access.BEARER),
    ("POST", "/api/v1/auth/login"): Route("auth.login", "auth", Access.LOGIN, Counted.FORM),
    # The second factor: its mfa_token names the account (`<user id>.<random>`, gateway.logins).
    ("POST", "/api/v1/auth/login/mfa"): Route("auth.login_mfa", "auth", Access.LOGIN, Counted.MFA),
    ("POST", "/api/v1/auth/refresh"): Route("auth.refresh", "auth", Access.PUBLIC),
    ("POST", "/api/v1/auth/token"): Route("auth.token", "auth", Access.LOGIN, Counted.TOKEN),
    ("POST", "/api/v1/auth/revoke"): Route("auth.revoke", "auth", Access.PUBLIC),
    ("POST", "/api/v1/auth/logout"): Route("auth.logout", "auth", Access.BEARER),
    # The hosted sign-in page posts a password (API.md §13): the login limits count it as the
    # login form. UserInfo is a bearer route (a revoked token is refused here).
    ("GET", "/api/v1/auth/authorize"): Route("auth.authorize", "auth", Access.PUBLIC, page=True),
    ("POST", "/api/v1/auth/authorize"): Route(
        "auth.sign_in", "auth", Access.LOGIN, Counted.SIGN_IN, page=True
    ),
    ("POST", "/api/v1/auth/authorize/mfa"): Route(
        "auth.sign_in_mfa", "auth", Access.LOGIN, Counted.SIGN_IN_MFA, page=True
    ),
    # Its passkeys: a challenge stored per request (options) and a signature checked per
    # answer, so one address may not make them without end. A passkey answer is a signature over
    # a fresh challenge, nothing to guess, so the address alone is counted; the second factor's
    # passkey answer is a post of /authorize/mfa, counted with its ticket's account as a code.
    # The options are fetched by the page's script (problem+json); the answer is a form post.
    ("POST", "/api/v1/auth/authorize/passkey"): Route(
        "auth.sign_in_passkey", "auth", Access.PUBLIC, Counted.ADDRESS, page=True
    ),
    ("POST", "/api/v1/auth/authorize/passkey/options"): Route(
        "auth.sign_in_passkey", "auth", Access.PUBLIC, Counted.ADDRESS
    ),
    ("POST", "/api/v1/auth/authorize/mfa/options"): Route(
        "auth.sign_in_passkey", "auth", Access.PUBLIC, Counted.ADDRESS
    ),
    # The rest of the hosted pages (consent, sign-out).
    ("POST", "/api/v1/auth/authorize/consent"): Route(
        "auth.pages", "auth", Access.PUBLIC, page=True
    ),
    ("GET", "/api/v1/auth/end-session"): Route("auth.pages", "auth", Access.PUBLIC, page=True),
    ("POST", "/api/v1/auth/end-session"): Route("auth.pages", "auth", Access.PUBLIC, page=True),
    ("GET", "/api/v1/auth/userinfo"): Route("auth.userinfo", "auth", Access.BEARER),
    # The OpenID Connect client registry (API.md §13): a bearer route, so that a logged-out
    # admin's token is refused here from the next request on, as for every bearer route.
    ("GET", "/api/v1/auth/clients"): Route("auth.clients", "auth", Access.BEARER),
    ("POST", "/api/v1/auth/clients"): Route("auth.clients", "auth", Access.BEARER),
    # The caller's sessions (API.md §10): an ended session's token is refused here, not listed.
    ("GET", "/api/v1/auth/sessions"): Route("auth.sessions", "auth", Access.BEARER),
    ("DELETE", "/api/v1/auth/sessions"): Route("auth.sessions", "auth", Access.BEARER),
    ("GET", "/.well-known/jwks.json"): Route("auth.jwks", "auth", Access.PUBLIC),
    ("GET", "/.well-known/openid-configuration"): Route("auth.discovery", "auth", Access.PUBLIC),
    ("GET", "/api/v1/users/me"): Route("users.me", "users", Access.BEARER),
    ("PATCH", "/api/v1/users/me"): Route("users.me_update", "users", Access.BEARER),
    # Password recovery (API.md §8): public; a reset link request counts under the recovery limit.
    ("POST", "/api/v1/users/password/forgot"): Route(
        "users.password_forgot", "users", Access.LOGIN, Counted.RECOVERY
    ),
    ("POST", "/api/v1/users/password/reset"): Route("users.password_reset", "users", Access.PUBLIC),
    ("PUT", "/api/v1/users/me/password"): Route(
        "users.password", "users", Access.BEARER, Counted.SUBJECT
    ),
    # Email verification (API.md §8): the link is public; a resend counts under the recovery limit.
    ("POST", "/api/v1/users/email/verify"): Route("users.email_verify", "users", Access.PUBLIC),
    ("POST", "/api/v1/users/me/email/verification"): Route(
        "users.email_verification", "users", Access.BEARER, Counted.RECOVERY_SUBJECT
    ),
    # The pages the emails link to (API.md §8), served by users with common.pages.
    ("GET", "/account/reset-password"): Route(
        "users.page_reset", "users", Access.PUBLIC, page=True
    ),
    ("POST", "/account/reset-password"): Route(
        "users.page_reset", "users", Access.PUBLIC, page=True
    ),
    ("GET", "/account/verify-email"): Route("users.page_verify", "users", Access.PUBLIC, page=True),
    ("POST", "/account/verify-email"): Route(
        "users.page_verify", "users", Access.PUBLIC, page=True
    ),
    ("GET", "/account/static/pages.css"): Route("users.page_style", "users", Access.PUBLIC),
}
_PREFIXES: tuple[tuple[str, Route], ...] = (
    ("/api/v1/users/", Route("users.other", "users", Access.BEARER)),
    ("/api/v1/auth/clients/", Route("auth.clients", "auth", Access.BEARER)),
    ("/api/v1/auth/sessions/", Route("auth.sessions", "auth", Access.BEARER)),
    ("/api/v1/auth/", Route("auth.other", "auth", Access.PUBLIC)),
)
# Methods no route of the platform serves (TRACE, QUERY, ...) need no token to be told so: they go
# to the service as public requests, and it answers 405 with the path's `Allow` (or 404).
SERVED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNSERVED_PREFIXES = tuple(
    (prefix, replace(route, access=Access.PUBLIC)) for prefix, route in _PREFIXES
)
# The table lists every method of each of its paths (HEAD goes with GET). Any other method of such
# a path goes to the service as a public request, so that it answers 405 with the path's `Allow`
# (OPTIONS: 204) before a token is asked for (API.md §3); a token presented with it is still
# verified and checked for revocation (admission.py), and the service checks it again.
_OTHER_METHODS: dict[str, Route] = {
    path: Route(f"{route.upstream}.other_method", route.upstream, Access.PUBLIC)
    for (_, path), route in _EXACT.items()
}
_UNSAFE = re.compile(r"%(2[eEfF]|5[cC]|00)|\\|//|/\.\.?(/|$)")


def unsafe_path(raw_path: bytes) -> bool:
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError:
        return True
    return not text.startswith("/") or _UNSAFE.search(text) is not None


def match(method: str, path: str) -> Route | None:
    route = _EXACT.get((method, path))
    if route is not None:
        return route
    other = _OTHER_METHODS.get(path)
    if other is not None:
        return _EXACT.get(("GET", path), other) if method == "HEAD" else other
    if method == "OPTIONS":  # CORS preflights are answered by the gateway itself
        method = "GET"
    for prefix, candidate in _PREFIXES if method in SERVED_METHODS else _UNSERVED_PREFIXES:
        if path.startswith(prefix):
            return candidate
    return None
