"""CSRF protection for the hosted pages' forms: a signed double-submit token.

Why this kind: the pages are served by stateless replicas with no browser session to keep a
synchronizer token in, so the token is bound to a cookie instead. A plain double submit (the same
random value in the cookie and the form) falls to anyone who can *write* a cookie for the origin
(a sibling subdomain, a plain-HTTP man in the middle): they set a cookie and a form of their own.
Here the cookie holds a random nonce and the form a MAC, under a server key, of the nonce, the
form's purpose and the time it was issued: a written cookie is useless without a MAC only the
server can make, a token is good for one form only and for `max_age` seconds only. The cookie is
`HttpOnly`, `SameSite=Lax` and, on HTTPS, `__Host-` prefixed (Secure, Path=/, no Domain: a
subdomain cannot set it). Services rendering pages on one origin share the cookie's nonce (a page
reuses a nonce it is sent), so one service's page never voids another's open form.

OWASP's CSRF cheat sheet calls this the "signed double-submit cookie"; `Sec-Fetch-Site`, where a
browser sends it, refuses cross-site and same-site posts besides (defence in depth; the Origin
header cannot be used, as `Referrer-Policy: no-referrer` makes browsers send `Origin: null`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TypeGuard

NONCE_BYTES = 32
_NONCE_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
_TOKEN_SHAPE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
# Fetch metadata values a form post of our own can carry ("none": typed or bookmarked).
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
# A token issued this far in the future is still accepted (clocks of replicas differ a little).
CLOCK_SKEW_SECONDS = 60


class CsrfRefused(Exception):
    """The form post did not carry a valid token for its cookie and purpose."""


def derive_key(secret: str, label: str = "gatehouse/pages/csrf") -> bytes:
    """A key for CSRF tokens only, derived from a deployment secret (HMAC-SHA256 as a PRF with a
    label: knowing the derived key reveals nothing of the secret, and no other use of the
    secret shares this key)."""
    return hmac.new(secret.encode("utf-8"), label.encode("utf-8"), hashlib.sha256).digest()


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def well_formed_nonce(value: str | None) -> TypeGuard[str]:
    return value is not None and _NONCE_SHAPE.fullmatch(value) is not None


class CsrfTokens:
    """Issues and checks the form tokens of one service (`key` from `derive_key`)."""

    def __init__(
        self, key: bytes, *, max_age: int = 3600, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key
        self.max_age = max_age
        self._clock = clock

    def _mac(self, purpose: str, nonce: str, issued: int) -> str:
        message = f"{purpose}\x00{nonce}\x00{issued}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def issue(self, purpose: str, nonce: str) -> str:
        issued = int(self._clock())
        return f"{issued}.{self._mac(purpose, nonce, issued)}"

    def check(
        self,
        purpose: str,
        nonce: str | None,
        token: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Raise `CsrfRefused` unless `token` was issued for `purpose` and the cookie's `nonce`
        within `max_age` seconds, and the browser did not say the post came from another site."""
        site = (headers or {}).get("sec-fetch-site")
        if site is not None and site not in ALLOWED_FETCH_SITES:
            raise CsrfRefused("cross-site post")
        if not well_formed_nonce(nonce) or token is None:
            raise CsrfRefused("no cookie or no token")
        shape = _TOKEN_SHAPE.fullmatch(token)
        if shape is None:
            raise CsrfRefused("malformed token")
        issued = int(shape.group(1))
        now = self._clock()
        if issued > now + CLOCK_SKEW_SECONDS or now - issued > self.max_age:
            raise CsrfRefused("expired token")
        if not hmac.compare_digest(shape.group(2), self._mac(purpose, nonce, issued)):
            raise CsrfRefused("wrong token")
