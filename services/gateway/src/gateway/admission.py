"""Whether a request may go on, before anything reaches an upstream: its path, its declared
length, the client's address, its token, the login limits' key, and the guard's verdict (limits
and revocation, one Redis call). Every refusal is raised as `Refused`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.tokens import AccessClaims, InvalidToken, JwksUnavailable

from gateway import routes
from gateway.bodies import BodyTooLarge
from gateway.edge import limit_address
from gateway.guard import Verdict
from gateway.logins import login_keys
from gateway.metrics import RATE_LIMITED, REVOKED
from gateway.problems import (
    Refused,
    not_found,
    too_large,
    unauthorized,
    unavailable,
)
from gateway.routes import Access, Counted

if TYPE_CHECKING:
    from gateway.proxy import Exchange

# What counts under the recovery limit (API.md §8): reset link requests and verification resends.
RECOVERY_LIMITED = frozenset({Counted.RECOVERY, Counted.RECOVERY_SUBJECT})
# Login bodies are read whole to find the account; they are small.
LOGIN_BODY_LIMIT = 16 * 1024


@dataclass(slots=True)
class Admitted:
    raw_path: bytes
    client_ip: str  # as the upstream is told it (X-Forwarded-For)
    address: str  # as the limits count it (an IPv6 client's /64)
    body: bytes | None  # read already (login routes)
    length: int | None  # Content-Length


async def admit(exchange: Exchange) -> Admitted:
    edge, scope, route = exchange.edge, exchange.scope, exchange.route
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    if routes.unsafe_path(raw_path):
        raise not_found()
    length = content_length(exchange.header(b"content-length"))
    if length is not None and length > edge.max_body:
        raise too_large(f"The body exceeds {edge.max_body} bytes.")
    peer = scope["client"][0] if scope.get("client") else "0.0.0.0"  # noqa: S104
    client_ip = edge.proxies.client_address(peer, exchange.headers)
    address = limit_address(client_ip)

    claims = None
    authorization = exchange.header(b"authorization")
    if authorization is not None or route.access is Access.BEARER:
        claims = await claims_of(exchange, authorization)

    body: bytes | None = None
    login_key = login_address = None
    if route.access is Access.LOGIN:
        try:
            body = await exchange.body.read(min(edge.max_body, LOGIN_BODY_LIMIT))
        except BodyTooLarge:
            raise too_large("The login body is too large.") from None
    if route.counted is not Counted.NONE:
        login_key, login_address = login_keys(
            route,
            address,
            body or b"",
            exchange.header(b"content-type"),
            authorization,
            claims.subject if claims else None,
        )

    verdict = await edge.guard.check(
        f"user:{claims.subject}" if claims else f"ip:{address}",
        login_key,
        claims.session_id if claims else None,
        claims.subject if claims else None,
        claims.issued_at if claims else 0,
        login_address=login_address,
        recovery=route.counted in RECOVERY_LIMITED,
    )
    judge(exchange, verdict)
    return Admitted(raw_path, client_ip, address, body, length)


def content_length(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise Refused(400, "Bad Request", "Invalid Content-Length.")
    return value


async def claims_of(exchange: Exchange, authorization: bytes | None) -> AccessClaims | None:
    """The token's claims; None on a public route whose token is absent or bad (the request
    counts as anonymous, per IP; the upstream judges). A bearer route refuses instead."""
    required = exchange.route.access is Access.BEARER
    scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        if required:
            raise unauthorized("A bearer token is required.", presented=authorization is not None)
        return None
    try:
        return await exchange.edge.verifier.verify(token)
    except JwksUnavailable:
        # No key was ever fetched (auth unreachable since start): the token may well be valid,
        # so not a 401 that would make a client throw it away.
        if required:
            raise unavailable("Tokens cannot be checked right now.", retry_after=5) from None
        return None
    except InvalidToken:
        if required:
            raise unauthorized("The token is invalid or expired.", presented=True) from None
        return None


def judge(exchange: Exchange, verdict: Verdict) -> None:
    """Raise the guard's refusal, or add the general limit's headers to the answer."""
    if verdict.unavailable:
        raise unavailable("Token revocation cannot be checked right now.", retry_after=1)
    if verdict.revoked:
        REVOKED.inc()
        raise unauthorized("The token has been revoked.", presented=True)
    used = verdict.limited
    if used is not None:
        RATE_LIMITED.labels(used.name).inc()
        raise Refused(
            429,
            "Too Many Requests",
            "Slow down and retry later.",
            [
                (b"retry-after", b"%d" % verdict.retry_after),
                (b"ratelimit-policy", f'"{used.name}";q={used.limit};w={used.window}'.encode()),
                (b"ratelimit", f'"{used.name}";r=0;t={verdict.reset}'.encode()),
            ],
        )
    exchange.reply.headers += [
        (b"ratelimit-policy", exchange.edge.rate_policy),
        (b"ratelimit", b'"general";r=%d;t=%d' % (verdict.remaining, verdict.reset)),
    ]
