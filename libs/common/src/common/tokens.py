"""JWT verification against a JWKS, shared by the gateway and every service.

`JwksCache` fetches the auth service's key set asynchronously, parses each key once per `kid`, and
refetches when it meets an unknown `kid` (at most once per cooldown, one fetch at a time). While no
key was ever fetched, a failed fetch is not tried again within the cooldown either.
`TokenVerifier` checks, in order: size, header (`alg` allow-list, `typ`, no `jku`/`x5u`/`jwk`/`x5c`,
a sane `kid`), the signature with the cached key, then `iss`, `aud`, `exp`, `nbf`, `iat` with a
small leeway. Anything wrong raises `InvalidToken`; nothing else escapes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

from common.revocation import MAX_ACCESS_TOKEN_SECONDS

if TYPE_CHECKING:
    from common.settings import ServiceSettings

ALLOWED_ALGORITHMS = ("RS256",)
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
MAX_TOKEN_BYTES = 8192
MAX_KID_LENGTH = 128
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti")
# RFC 8176 `amr`: a handful of short method names ("pwd", "otp", "hwk", ...).
MAX_AMR_VALUES = 8
MAX_AMR_LENGTH = 16

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class InvalidToken(Exception):
    """The token must not be trusted; the message is safe to log, not to return."""


class JwksUnavailable(InvalidToken):
    """The key set could not be fetched and no cached key matches."""


def http_jwks_fetcher(url: str, client: httpx.AsyncClient | None = None) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        if client is not None:
            response = await client.get(url, timeout=5.0)
        else:
            async with httpx.AsyncClient(timeout=5.0) as own:
                response = await own.get(url)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise JwksUnavailable("JWKS is not an object")
        return body

    return fetch


def parse_jwks(document: Mapping[str, Any]) -> dict[str, Any]:
    """kid → public key object, for the RSA signing keys of the allowed algorithms."""
    keys: dict[str, Any] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise JwksUnavailable("JWKS has no key list")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") not in ALLOWED_ALGORITHMS:
            continue
        try:
            keys[kid] = RSAAlgorithm.from_jwk(entry)
        except (jwt.InvalidKeyError, ValueError, KeyError, TypeError):
            continue
    return keys


class JwksCache:
    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        max_age: float = 300.0,
        refetch_cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._cooldown = refetch_cooldown
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        # When a fetch last failed with no key at hand: until the cooldown has passed, a request
        # is answered unavailable at once rather than each one asking auth (down) again.
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    def cached(self, kid: str) -> Any | None:
        """The key for `kid` when it is cached and fresh: the hot path, no await."""
        if self._fetched_at is None or self._clock() - self._fetched_at > self._max_age:
            return None
        return self._keys.get(kid)

    async def key_for(self, kid: str) -> Any:
        key = self.cached(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self.cached(kid)
            if key is not None:
                return key
            now = self._clock()
            failed_at = self._failed_at
            if not self._keys and failed_at is not None and now - failed_at < self._cooldown:
                raise JwksUnavailable("JWKS fetch failed moments ago")
            stale = self._fetched_at is None or now - self._fetched_at > self._max_age
            cooled = self._fetched_at is None or now - self._fetched_at >= self._cooldown
            if stale or cooled:
                await self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        return key

    async def _refresh(self) -> None:
        try:
            document = await self._fetch()
            keys = parse_jwks(document)
        except (httpx.HTTPError, ValueError, JwksUnavailable) as exc:
            if not self._keys:
                self._failed_at = self._clock()
                raise JwksUnavailable(f"JWKS fetch failed: {type(exc).__name__}") from exc
            # Keep serving the keys we had (auth down must not stop token checks); try again later.
            self._fetched_at = self._clock()
            return
        self.fetch_count += 1
        self._keys = keys
        self._fetched_at = self._clock()
        self._failed_at = None


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    session_id: str | None
    client_id: str | None
    scopes: frozenset[str]
    roles: tuple[str, ...]
    token_id: str
    issued_at: int
    expires_at: int
    raw: Mapping[str, Any] = field(repr=False)
    # RFC 9470 / OIDC: when the user last proved a credential, and how (RFC 8176). Service
    # tokens carry neither.
    auth_time: int | None = None
    amr: tuple[str, ...] = ()


def _numeric_date(payload: Mapping[str, Any], claim: str) -> int:
    """RFC 7519 NumericDate: a JSON number (PyJWT also takes numeric strings; we do not)."""
    value = payload[claim]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidToken(f"malformed {claim}")
    return int(value)


def _authentication(payload: Mapping[str, Any], leeway: int) -> tuple[int | None, tuple[str, ...]]:
    """`auth_time` (a NumericDate not in the future) and `amr` (a short list of short strings)."""
    auth_time = None
    if "auth_time" in payload:
        auth_time = _numeric_date(payload, "auth_time")
        if auth_time > time.time() + leeway:
            raise InvalidToken("auth_time in the future")
    amr = payload.get("amr", [])
    if not isinstance(amr, list) or len(amr) > MAX_AMR_VALUES:
        raise InvalidToken("malformed amr")
    if not all(isinstance(m, str) and 0 < len(m) <= MAX_AMR_LENGTH for m in amr):
        raise InvalidToken("malformed amr")
    return auth_time, tuple(amr)


def _claims(payload: Mapping[str, Any], max_lifetime: int, leeway: int = 0) -> AccessClaims:
    issued_at = _numeric_date(payload, "iat")
    expires_at = _numeric_date(payload, "exp")
    _numeric_date(payload, "nbf")
    if expires_at - issued_at > max_lifetime:
        raise InvalidToken("lifetime beyond the maximum")
    scope = payload.get("scope", "")
    roles = payload.get("roles", [])
    sid = payload.get("sid")
    client_id = payload.get("client_id")
    if not isinstance(scope, str) or not isinstance(roles, list):
        raise InvalidToken("malformed scope or roles")
    if not all(isinstance(r, str) for r in roles) or not isinstance(payload["sub"], str):
        raise InvalidToken("malformed roles or sub")
    if sid is not None and not isinstance(sid, str):
        raise InvalidToken("malformed sid")
    if client_id is not None and not isinstance(client_id, str):
        raise InvalidToken("malformed client_id")
    if not isinstance(payload["jti"], str):
        raise InvalidToken("malformed jti")
    auth_time, amr = _authentication(payload, leeway)
    return AccessClaims(
        subject=payload["sub"],
        session_id=sid,
        client_id=client_id,
        scopes=frozenset(scope.split()),
        roles=tuple(roles),
        token_id=payload["jti"],
        issued_at=issued_at,
        expires_at=expires_at,
        raw=payload,
        auth_time=auth_time,
        amr=amr,
    )


class TokenVerifier:
    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str,
        leeway: int = 30,
        token_types: frozenset[str] = ACCESS_TOKEN_TYPES,
        max_lifetime: int = MAX_ACCESS_TOKEN_SECONDS,
        cache_size: int = 0,
    ) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.token_types = token_types
        # Defence in depth: a token living longer than auth ever signs is refused (API.md §2).
        self.max_lifetime = max_lifetime + leeway
        # Verified tokens remembered (oldest forgotten first) until they expire, and only while
        # the key that signed them is still in the key set (a key unpublished ends its tokens at
        # once, remembered or not), so a client repeating its token costs a lookup instead of
        # an RSA verification. Revocation is a separate, per-request check, never cached.
        self.cache_size = cache_size
        self._verified: dict[str, tuple[AccessClaims, str]] = {}
        self._jws = jwt.PyJWS(algorithms=list(ALLOWED_ALGORITHMS))
        self._jwt = jwt.PyJWT()

    def _header(self, token: str) -> str:
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed header") from exc
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise InvalidToken("algorithm not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in self.token_types:
            raise InvalidToken("wrong token type")
        if FORBIDDEN_HEADERS.intersection(header):
            raise InvalidToken("forbidden header parameter")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            raise InvalidToken("bad kid")
        return kid

    def _decode(self, token: str, key: Any) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidToken("malformed token") from exc
        return _claims(payload, self.max_lifetime, self.leeway)

    @classmethod
    def for_audience(
        cls, jwks: JwksCache, settings: ServiceSettings, audience: str, *, cache_size: int
    ) -> TokenVerifier:
        """A verifier of tokens for `audience`, with the issuer and leeway every service shares,
        remembering `cache_size` verified tokens."""
        return cls(
            jwks,
            issuer=settings.issuer,
            audience=audience,
            leeway=settings.token_leeway_seconds,
            cache_size=cache_size,
        )

    def remembers(self, token: str) -> bool:
        """Whether `token` is among the verified tokens remembered (`verify` still checks that
        it has not expired and that its key is still published)."""
        return token in self._verified

    async def verify(self, token: str) -> AccessClaims:
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, kid = remembered
            if claims.expires_at + self.leeway <= time.time():
                del self._verified[token]
                raise InvalidToken("expired")
            if self.jwks.cached(kid) is not None:
                return claims
            # The key is gone or the key set is due a refresh: verify afresh below.
            del self._verified[token]
        kid = self._header(token)
        key = self.jwks.cached(kid) or await self.jwks.key_for(kid)
        claims = self._decode(token, key)
        if self.cache_size:
            if len(self._verified) >= self.cache_size:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (claims, kid)
        return claims
