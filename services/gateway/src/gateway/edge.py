"""What the edge adds and removes: hop-by-hop and identity headers, forwarding headers, security
headers, CORS, and the client address (believed from X-Forwarded-For only via trusted proxies)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Never taken from a client: upstreams must not be told who the caller is by the caller.
SPOOFABLE_PREFIXES = (b"x-user-", b"x-internal-", b"x-forwarded-")
DROPPED_REQUEST = frozenset({b"host", b"forwarded", b"x-real-ip", b"content-length", b"expect"})
# An upstream's X-Request-ID echoes the one the gateway sent: the gateway sets it once itself.
DROPPED_RESPONSE = frozenset({b"server", b"x-powered-by", b"content-length", b"x-request-id"})
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
FRAME_ANCESTORS = b"frame-ancestors 'none'"
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
CORS_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_HEADERS = b"Authorization, Content-Type, X-Request-ID"
CORS_EXPOSE = b"RateLimit, RateLimit-Policy, Retry-After, X-Request-ID"

Headers = list[tuple[bytes, bytes]]


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    named: set[bytes] = set()
    for key, value in headers:
        if key == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    return named


# What never passes, whatever the Connection header names: the hop-by-hop fields plus these.
_DROP_REQUEST = HOP_BY_HOP | DROPPED_REQUEST
_DROP_RESPONSE = HOP_BY_HOP | DROPPED_RESPONSE
_DROP_RESPONSE_KEEP_LENGTH = _DROP_RESPONSE - {b"content-length"}
_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS) | {b"content-security-policy"}


def upstream_request_headers(
    headers: Sequence[tuple[bytes, bytes]], has_connection: bool = True
) -> Headers:
    """`has_connection` False says no Connection field is among `headers` (a lookup spared)."""
    named = connection_tokens(headers) if has_connection else set()
    return [
        (key, value)
        for key, value in headers
        if key not in _DROP_REQUEST
        and not key.startswith(SPOOFABLE_PREFIXES)
        and (not named or key not in named)
    ]


def client_response_headers(headers: Sequence[tuple[bytes, bytes]], keep_length: bool) -> Headers:
    dropped = _DROP_RESPONSE_KEEP_LENGTH if keep_length else _DROP_RESPONSE
    kept = [(key, value) for key, value in headers if key not in dropped]
    if len(kept) == len(headers):
        return kept  # nothing hop-by-hop: no Connection field either
    named = connection_tokens(headers)
    if named:
        kept = [(key, value) for key, value in kept if key not in named]
    codings = relayed_transfer_codings(headers)
    if codings:
        kept.append((b"transfer-encoding", codings))
    return kept


def relayed_transfer_codings(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The upstream's transfer codings but a final chunked, which the gateway undid: the body goes
    on with the others (`gzip, chunked` → `gzip`), and the ASGI server frames it by chunked."""
    codings = [
        coding.strip()
        for key, value in headers
        if key == b"transfer-encoding"
        for coding in value.split(b",")
        if coding.strip()
    ]
    if codings and codings[-1].lower() == b"chunked":
        codings.pop()
    return b", ".join(codings)


def add_security_headers(headers: Headers, https: bool) -> None:
    present = {key for key, _ in headers}
    if present.isdisjoint(_SECURITY_NAMES):
        headers.extend(SECURITY_HEADERS)
        headers.append((b"content-security-policy", FRAME_ANCESTORS))
    else:
        headers.extend(item for item in SECURITY_HEADERS if item[0] not in present)
        if b"content-security-policy" not in present:
            headers.append((b"content-security-policy", FRAME_ANCESTORS))
    if https and HSTS[0] not in present:
        headers.append(HSTS)


class TrustedProxies:
    def __init__(self, cidrs: Sequence[str]) -> None:
        self.networks = [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]

    def trusts(self, address: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_address(self, peer: str, headers: Sequence[tuple[bytes, bytes]]) -> str:
        """The socket peer, unless it is a trusted proxy: then the right-most address of
        X-Forwarded-For that is not itself a trusted proxy (the left part is client-written).
        The field is one list across all its lines (RFC 9110 §5.3), the last line nearest."""
        if not self.networks or not self.trusts(peer):
            return peer
        lines = [value for key, value in headers if key == b"x-forwarded-for"]
        if not lines:
            return peer
        hops = [hop.strip() for hop in b",".join(lines).decode("latin-1").split(",")]
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer  # garbage in the chain: believe nothing of it
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


def limit_address(address: str) -> str:
    """The client as the IP-based limits count it: an IPv4 address, or an IPv6 address's /64
    (one subscriber holds a whole /64, so its single addresses are free to rotate); an
    IPv4-mapped IPv6 address counts as its IPv4 address."""
    if ":" not in address:
        return address
    counted = _LIMIT_ADDRESSES.get(address)
    if counted is None:
        if len(_LIMIT_ADDRESSES) >= _LIMIT_ADDRESS_CACHE:
            _LIMIT_ADDRESSES.clear()
        try:
            ip = ipaddress.IPv6Address(address.partition("%")[0])
        except ValueError:
            counted = address
        else:
            mapped = ip.ipv4_mapped
            counted = (
                str(mapped)
                if mapped is not None
                else str(ipaddress.IPv6Network((ip, 64), strict=False).network_address) + "/64"
            )
        _LIMIT_ADDRESSES[address] = counted
    return counted


_LIMIT_ADDRESSES: dict[str, str] = {}
_LIMIT_ADDRESS_CACHE = 10_000


class Cors:
    def __init__(self, origins: Sequence[str]) -> None:
        self.origins = frozenset(o.rstrip("/").encode() for o in origins if o.strip() != "*")

    def allowed(self, origin: bytes | None) -> bool:
        return origin is not None and origin in self.origins

    def response_headers(self, origin: bytes) -> Headers:
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", CORS_EXPOSE),
            (b"vary", b"Origin"),
        ]

    def preflight_headers(self, origin: bytes) -> Headers:
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-allow-methods", CORS_METHODS),
            (b"access-control-allow-headers", CORS_HEADERS),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
        ]
