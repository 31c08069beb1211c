"""The hot path, in plain ASGI: route, verify, one Redis call, then stream to the upstream over a
warm keep-alive pool (upstream.py) and stream the answer back. Everything else (health, metrics,
docs) goes to the FastAPI app beside it."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from common.logs import accept_request_id, request_id_var
from common.tokens import InvalidToken, JwksUnavailable, TokenVerifier
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import routes
from gateway.bodies import BUFFERED_BODY, BodyReader, BodyTooLarge, ClientGone, ClientTooSlow
from gateway.breaker import CircuitBreaker
from gateway.edge import (
    Cors,
    Headers,
    TrustedProxies,
    add_security_headers,
    client_response_headers,
    limit_address,
    upstream_request_headers,
)
from gateway.guard import Guard, Verdict
from gateway.logins import account_key
from gateway.metrics import LATENCY, RATE_LIMITED, REQUESTS, REVOKED, UPSTREAM_ERRORS
from gateway.problems import (
    PROBLEM,
    Refused,
    client_too_slow,
    too_large,
    unavailable,
    uploads_refused,
)
from gateway.routes import Access, Counted, Route
from gateway.upstream import Connection, PoolBusy, Upstream, UpstreamError

logger = logging.getLogger("gatehouse.gateway")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Login bodies are read whole to find the username; they are small.
LOGIN_BODY_LIMIT = 16 * 1024


# Request ids as uuid4().hex looks (32 hex digits) without a urandom call per request: a random
# per-process half and a counter. They correlate log lines; they are not secrets.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(int.from_bytes(secrets.token_bytes(4)))


def next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


# The labelled request counter and latency histogram per (route, status), looked up once: a
# `labels()` call costs more than the increment and the observation together.
_OBSERVED: dict[tuple[Route, int], tuple[Any, Any]] = {}


def observe(route: Route, status: int, seconds: float) -> None:
    metrics = _OBSERVED.get((route, status))
    if metrics is None:
        metrics = _OBSERVED[route, status] = (
            REQUESTS.labels(route.name, route.upstream, str(status)),
            LATENCY.labels(route.name),
        )
    metrics[0].inc()
    metrics[1].observe(seconds)


@dataclass
class Edge:
    """Everything the hot path needs, built in the lifespan."""

    upstreams: dict[str, Upstream]
    verifier: TokenVerifier
    guard: Guard
    breakers: dict[str, CircuitBreaker]
    proxies: TrustedProxies
    cors: Cors
    max_body: int
    body_timeout: float = 10.0  # CLIENT_BODY_TIMEOUT: seconds per 64 KiB of request body
    uploads_per_ip: int = 4  # CLIENT_UPLOADS_PER_IP: streamed bodies at once per client IP
    uploads: dict[str, int] = field(default_factory=dict)  # client IP → streamed bodies now
    rate_policy: bytes = b""  # RateLimit-Policy of the general limit
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        general = self.guard.general
        self.rate_policy = f'"general";q={general.limit};w={general.window}'.encode()


class Gateway:
    """The outermost middleware of the gateway's FastAPI app: proxied routes are answered here,
    in plain ASGI; the rest (health, metrics, docs, 404s) goes on to FastAPI (`ops`)."""

    def __init__(self, ops: ASGIApp, edge_of: Callable[[], Edge | None]) -> None:
        self.ops = ops
        self.edge_of = edge_of  # the Edge built by the lifespan, None before

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.ops(scope, receive, send)
            return
        edge: Edge | None = self.edge_of()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        named = dict(reversed(headers))  # name → value, the first of repeated fields
        origin = named.get(b"origin")
        https = self._https(scope, edge, headers)
        if edge is not None and scope["method"] == "OPTIONS" and origin is not None:
            await self._preflight(edge, origin, send, https)
            return
        route = routes.match(scope["method"], scope["path"])
        cors: Headers = []
        if edge is not None and origin is not None and edge.cors.allowed(origin):
            cors = edge.cors.response_headers(origin)
        if route is not None and edge is not None:
            # The exchange adds the edge's headers to its answers itself (Exchange._start).
            await Exchange(edge, route, scope, receive, send, named, https, cors).run()
            return

        async def edge_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers", []))
                add_security_headers(out, https)
                out.extend(cors)
                message["headers"] = out
            await send(message)

        await self.ops(scope, receive, edge_send)

    @staticmethod
    def _https(scope: Scope, edge: Edge | None, headers: list[tuple[bytes, bytes]]) -> bool:
        if scope.get("scheme") == "https":
            return True
        client = scope.get("client")
        if edge is None or client is None or not edge.proxies.trusts(client[0]):
            return False
        return any(k == b"x-forwarded-proto" and v.lower() == b"https" for k, v in headers)

    @staticmethod
    async def _preflight(edge: Edge, origin: bytes, send: Send, https: bool) -> None:
        out: Headers = edge.cors.preflight_headers(origin) if edge.cors.allowed(origin) else []
        add_security_headers(out, https)
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})


class Exchange:
    """One proxied request."""

    def __init__(
        self,
        edge: Edge,
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
        named: dict[bytes, bytes],
        https: bool,
        cors: Headers,
    ) -> None:
        self.edge = edge
        self.route = route
        self.scope = scope
        self.receive = receive
        self.send = send
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.named = named
        self.https = https
        self.cors = cors
        inbound = named.get(b"x-request-id")
        self.request_id = accept_request_id(inbound) if inbound else next_request_id()
        self.status = 500
        self.started = False
        self.extra_headers: Headers = [(b"x-request-id", self.request_id.encode())]
        self.body = BodyReader(receive, edge.body_timeout, edge.max_body)

    def _header(self, name: bytes) -> bytes | None:
        """The first field of that name."""
        return self.named.get(name)

    async def run(self) -> None:
        token = request_id_var.set(self.request_id)
        began = time.perf_counter()
        try:
            await self._run()
        except Refused as refused:
            if not self.started:
                await self.refuse(refused)
        except ClientTooSlow:
            if not self.started:
                await self.refuse(client_too_slow(self.edge.body_timeout))
        except BodyTooLarge:
            if not self.started:
                await self.refuse(too_large())
        except ClientGone:
            self.status = 499
        except Exception:
            logger.exception("gateway error on %s", self.route.name)
            if not self.started:
                await self.problem(502, "Bad Gateway", "The upstream answer could not be relayed.")
        finally:
            observe(self.route, self.status, time.perf_counter() - began)
            request_id_var.reset(token)

    async def _run(self) -> None:
        edge, scope = self.edge, self.scope
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        if routes.unsafe_path(raw_path):
            await self.problem(404, "Not Found", "No such resource.")
            return
        length = self._content_length()
        if length is not None and length > edge.max_body:
            await self.problem(413, "Content Too Large", f"The body exceeds {edge.max_body} bytes.")
            return
        if length == -1:
            await self.problem(400, "Bad Request", "Invalid Content-Length.")
            return
        peer = scope["client"][0] if scope.get("client") else "0.0.0.0"  # noqa: S104
        client_ip = edge.proxies.client_address(peer, self.headers)
        address = limit_address(client_ip)
        route = self.route

        claims = None
        authorization = self._header(b"authorization")
        if authorization is not None or route.access is Access.BEARER:
            claims = await self._claims(authorization)
            if claims is None and route.access is Access.BEARER:
                return  # the 401 is sent

        body: bytes | None = None
        login_key = None
        counted = route.counted is not Counted.NONE
        if route.access is Access.LOGIN:
            try:
                body = await self.body.read(min(edge.max_body, LOGIN_BODY_LIMIT))
            except BodyTooLarge:
                raise too_large("The login body is too large.") from None
        if counted:
            login_key = account_key(
                route,
                address,
                body or b"",
                self._header(b"content-type"),
                authorization,
                claims.subject if claims else None,
            )

        client_key = f"user:{claims.subject}" if claims else f"ip:{address}"
        verdict = await edge.guard.check(
            client_key,
            login_key,
            claims.session_id if claims else None,
            claims.subject if claims else None,
            claims.issued_at if claims else 0,
            login_address=address if counted else None,
        )
        if not await self._admit(verdict):
            return
        await self._forward(raw_path, client_ip, address, body, length)

    def _content_length(self) -> int | None:
        raw = self._header(b"content-length")
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            return -1
        return value if value >= 0 else -1

    async def _claims(self, authorization: bytes | None) -> Any:
        scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            if self.route.access is Access.BEARER:
                await self.unauthorized(
                    "A bearer token is required.", presented=authorization is not None
                )
            return None
        try:
            return await self.edge.verifier.verify(token)
        except JwksUnavailable:
            # No key was ever fetched (auth unreachable since start): the token may well be
            # valid, so not a 401 that would make a client throw it away.
            if self.route.access is Access.BEARER:
                await self.problem(
                    503,
                    "Service Unavailable",
                    "Tokens cannot be checked right now.",
                    headers=[(b"retry-after", b"5")],
                )
            return None
        except InvalidToken:
            if self.route.access is Access.BEARER:
                await self.unauthorized("The token is invalid or expired.", presented=True)
            return None  # public routes: the upstream judges; limits go by IP

    async def _admit(self, verdict: Verdict) -> bool:
        policy = self.edge.rate_policy
        if verdict.unavailable:
            await self.problem(
                503,
                "Service Unavailable",
                "Token revocation cannot be checked right now.",
                headers=[(b"retry-after", b"1")],
            )
            return False
        if verdict.revoked:
            REVOKED.inc()
            await self.unauthorized("The token has been revoked.", presented=True)
            return False
        if verdict.limited is not None:
            RATE_LIMITED.labels(verdict.limited.name).inc()
            used = verdict.limited
            policy = f'"{used.name}";q={used.limit};w={used.window}'.encode()
            await self.problem(
                429,
                "Too Many Requests",
                "Slow down and retry later.",
                headers=[
                    (b"retry-after", str(verdict.retry_after).encode()),
                    (b"ratelimit-policy", policy),
                    (b"ratelimit", f'"{used.name}";r=0;t={verdict.reset}'.encode()),
                ],
            )
            return False
        self.extra_headers += [
            (b"ratelimit-policy", policy),
            (b"ratelimit", f'"general";r={verdict.remaining};t={verdict.reset}'.encode()),
        ]
        return True

    def _outbound_headers(self, client_ip: str) -> bytes:
        """The header lines for the upstream (Host and framing are the client's to add)."""
        out: dict[bytes, bytes] = {}
        for key, value in upstream_request_headers(self.headers, b"connection" in self.named):
            if key in out:  # repeated fields fold into one (cookies with "; ", RFC 6265)
                out[key] += (b"; " if key == b"cookie" else b", ") + value
            else:
                out[key] = value
        host = self._header(b"host")
        out[b"x-forwarded-for"] = client_ip.encode("latin-1")
        out[b"x-forwarded-proto"] = b"https" if self.https else b"http"
        if host is not None:
            out[b"x-forwarded-host"] = host
        out[b"x-request-id"] = self.request_id.encode("latin-1")
        # The server's parser lets no CR or LF into a name or value; never send one on.
        values = b"".join(out.values())
        if b"\n" in values or b"\r" in values:
            raise ValueError("a header holds a line break")
        return b"".join([key + b": " + value + b"\r\n" for key, value in out.items()])

    async def _forward(
        self, raw_path: bytes, client_ip: str, address: str, body: bytes | None, length: int | None
    ) -> None:
        edge, method, reader = self.edge, self.scope["method"], self.body
        upstream = self.route.upstream
        breaker = edge.breakers[upstream]
        query: bytes = self.scope.get("query_string", b"")
        target = raw_path + b"?" + query if query else raw_path
        headers = self._outbound_headers(client_ip)
        # Bodies up to 64 KiB are read whole before a connection is taken (one write upstream,
        # an idempotent request can be sent again, and a client holding its body back holds no
        # connection); larger ones and chunked ones past 64 KiB are streamed through.
        # Either way the limit is checked first: Content-Length on arrival, chunks as they come.
        first: list[bytes] | None = None
        if body is None and length:
            if length <= BUFFERED_BODY:
                body = await reader.read(length)
            else:
                first = []
        elif body is None and length is None and self._header(b"transfer-encoding"):
            first = await reader.read_up_to(BUFFERED_BODY)
            if reader.done:
                body, first = b"".join(first), None
        streaming = first is not None
        # A streamed body is still on its way: never the half-open probe.
        if not breaker.allow(probe=not streaming):
            UPSTREAM_ERRORS.labels(upstream, "circuit_open").inc()
            raise unavailable(f"The {upstream} service is unavailable.", retry_after=5)
        probe = breaker.opened_at is not None  # let through while not closed: the probe
        if not streaming:
            await self._exchange(method, target, headers, body, None, breaker, probe)
            return
        uploads = edge.uploads.get(address, 0)
        if uploads >= edge.uploads_per_ip:
            raise uploads_refused(edge.uploads_per_ip)  # never the probe: the circuit is closed
        edge.uploads[address] = uploads + 1
        try:
            stream = reader.stream(first or [])
            await self._exchange(method, target, headers, stream, length, breaker, probe)
        finally:
            left = edge.uploads[address] - 1
            if left:
                edge.uploads[address] = left
            else:
                del edge.uploads[address]

    async def _exchange(
        self,
        method: str,
        target: bytes,
        headers: bytes,
        body: bytes | AsyncIterator[bytes] | None,
        length: int | None,
        breaker: CircuitBreaker,
        probe: bool,
    ) -> None:
        upstream = self.route.upstream
        attempts = 2 if method in IDEMPOTENT and not isinstance(body, AsyncIterator) else 1
        client = self.edge.upstreams[upstream]
        for attempt in range(attempts):
            response: Connection | None = None
            try:
                response = await client.request(method, target, headers, body, length=length)
                breaker.success()
                await self._relay(response)
                return
            except (BodyTooLarge, ClientTooSlow, ClientGone, PoolBusy) as exc:
                # The client's doing, or the gateway's own limit: nothing about the upstream.
                if probe:
                    breaker.release()
                if not isinstance(exc, PoolBusy) or self.started:
                    raise
                UPSTREAM_ERRORS.labels(upstream, "pool_busy").inc()
                raise unavailable(f"The {upstream} service is busy.", retry_after=1) from None
            except TimeoutError:
                breaker.failure()
                UPSTREAM_ERRORS.labels(upstream, "timeout").inc()
                if not self.started:
                    raise Refused(
                        504, "Gateway Timeout", f"The {upstream} service did not answer in time."
                    ) from None
                return
            except UpstreamError as exc:
                if self.started:
                    logger.warning(
                        "upstream %s broke mid-response: %s", upstream, type(exc).__name__
                    )
                    return
                if attempt + 1 < attempts:
                    continue
                breaker.failure()
                UPSTREAM_ERRORS.labels(upstream, "connect").inc()
                raise unavailable(f"The {upstream} service is unavailable.", 1) from None
            finally:
                if response is not None:
                    response.finish()

    async def _relay(self, response: Connection) -> None:
        headers = client_response_headers(response.headers, keep_length=True)
        headers.extend(self.extra_headers)
        self.status = response.status
        body = response.body_if_complete()
        await self._start(response.status, headers)
        if body is not None:  # all of it arrived with the head (HEAD answers: nothing)
            await self.send({"type": "http.response.body", "body": body})
            return
        while (chunk := await response.read_chunk()) is not None:
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        await self.send({"type": "http.response.body", "body": b""})

    async def _start(self, status: int, headers: Headers) -> None:
        """`headers` is the answer's own list: the edge's headers are added to it."""
        self.started = True
        add_security_headers(headers, self.https)
        headers.extend(self.cors)
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def refuse(self, refused: Refused) -> None:
        await self._problem(refused.status, refused.body(self.scope["path"]), refused.headers)

    async def problem(
        self, status: int, title: str, detail: str, headers: Headers | None = None
    ) -> None:
        await self.refuse(Refused(status, title, detail, headers))

    async def _problem(self, status: int, body: bytes, headers: Headers) -> None:
        out: Headers = [
            (b"content-type", PROBLEM),
            (b"content-length", b"%d" % len(body)),
            *self.extra_headers,
            *headers,
        ]
        self.status = status
        await self._start(status, out)
        await self.send({"type": "http.response.body", "body": body})

    async def unauthorized(self, detail: str, *, presented: bool) -> None:
        challenge = b'Bearer error="invalid_token"' if presented else b"Bearer"
        await self.problem(401, "Unauthorized", detail, headers=[(b"www-authenticate", challenge)])
