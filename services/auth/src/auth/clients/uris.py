"""Which redirect URIs a client may register (RFC 6749 §3.1.2, RFC 8252 §7.3, RFC 9700 §2.1).

Strict on purpose: a redirect URI is where codes are sent, and it is compared as an exact string
at every authorization request, so what is stored must be unambiguous. Absolute, `https`, no
fragment, no user information, printable ASCII only; plain `http` only to a loopback host
(development, and native apps listening on a loopback port, RFC 8252 §7.3).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_URI_LENGTH = 2000
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
LOOPBACK_NAMES = frozenset({"localhost"})
# The whole rule as the API document declares it (API.md §13), checked as well as the reasons
# below, so that the document admits exactly what registers: `https://` and a DNS name (or an
# IPv4 literal, or `[::1]`), or `http://` and a loopback host; an optional port 1-65535 without
# leading zeros; then a path or query of printable ASCII without `#`.
_PORT = (
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
    r"|6553[0-5]))?"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
REDIRECT_URI_PATTERN = (
    r"^(?:https://(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[::1\])"
    rf"|http://(?:localhost|127(?:\.{_OCTET}){{3}}|\[::1\])){_PORT}"
    r'(?:[/?][!-"$-~]*)?$'  # printable ASCII but `#`
)
_REDIRECT_URI = re.compile(REDIRECT_URI_PATTERN)


def is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _well_formed_host(host: str, *, bracketed: bool) -> bool:
    if bracketed:
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    return HOST.fullmatch(host) is not None


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be registered, or None when it can."""
    if not uri or len(uri) > MAX_URI_LENGTH:
        return f"must be 1 to {MAX_URI_LENGTH} characters"
    if any(not (0x21 <= ord(char) <= 0x7E) for char in uri):
        return "must be printable ASCII without spaces (percent-encode the rest)"
    if "#" in uri:
        return "must not have a fragment"
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return "is not a valid URI"
    if parts.scheme not in {"https", "http"}:
        return "must be an absolute https URI (http only to a loopback host)"
    if not parts.hostname:
        return "must name a host"
    if not _well_formed_host(parts.hostname, bracketed="[" in parts.netloc):
        # Only DNS names and IP literals: the origin goes into the pages' CSP form-action.
        return "must name a host of letters, digits, dots and dashes, or an IP literal"
    if "@" in parts.netloc:
        return "must not carry user information"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "must be https unless the host is loopback (127.0.0.1, [::1], localhost)"
    if port == 0:
        return "must not name port 0"
    if _REDIRECT_URI.fullmatch(uri) is None:
        return "must be scheme://host[:port] and a path or query (ports 1-65535; IPv6 only [::1])"
    return None
