"""The floor for the gateway's `GET /api/v1/users/me`: the least a Python edge can do for it.

One uvloop process, no framework: an `asyncio.Protocol` server parsing with httptools (as uvicorn
does), one coroutine per request doing the gateway's checks and nothing else, then relaying:
- the bearer token through `common.tokens.TokenVerifier` with its verified-token cache (as the
  gateway), against auth's JWKS;
- the gateway's own Lua script (`gateway.guard.SCRIPT`: the general limit counted, the session's
  and the user's revocation markers and the epoch read) with the same keys, run by the same
  pipelined RESP client (`gateway.redis_pipe`, `gateway.redis_script`): one Redis round trip;
- the request sent to users over a keep-alive connection (hop-by-hop fields dropped,
  X-Forwarded-For/-Proto/-Host and X-Request-ID added), its answer parsed by httptools and
  written back with the security, rate-limit and request-id headers, in one write.

No body handling (GET only), no timeouts, no circuit breaker, no metrics, no CORS, no page
routes, no error pages beyond a bare 401/503/502: what is left is the Python a proxy with the
gateway's checks cannot avoid. The bench prints the gateway's CPU per request beside this one's.

With EDGE_FLOOR_ASGI set, the same edge runs as a plain ASGI app (no framework) under uvicorn
exactly as the services run (`common.serve`'s protocol and response cycle): the difference between
the two lines is what the server layer and ASGI cost per request.

Run (the bench does): `python -m bench.edge_floor` with EDGE_FLOOR_PORT, UPSTREAM_PORT,
REDIS_URL, JWKS_URL, ISSUER, AUDIENCE and optionally EDGE_FLOOR_ASGI.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections import deque
from http import HTTPStatus
from pathlib import Path

import httptools
import uvicorn
import uvloop
from common.revocation import EPOCH_KEY, session_key, user_key
from common.serve import config_for, freeze_startup_heap
from common.testing import free_port
from common.tokens import InvalidToken, JwksCache, TokenVerifier, http_jwks_fetcher
from gateway.guard import SCRIPT
from gateway.redis_pipe import PipelinedRedis, as_ints
from gateway.redis_script import RedisScript
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.listener import Listener, start_listener
from tests.integration.platform import ROOT

WINDOW = 1  # the bench's GATEWAY_RATE_LIMIT is per second
LIMIT = 1_000_000
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host"}
)
SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]  # status, header fields (Content-Length among them), body


def refused(status: int) -> Answer:
    return status, [(b"content-length", b"0")], b""


DROPPED_RESPONSE = frozenset({b"content-length", b"server", b"x-request-id"})
STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
HEALTH = b'HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{"status":"ok"}'


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to users; one answer at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Answer] | None = None
        self.headers: Headers = []
        self.body: list[bytes] = []
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("upstream closed"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        waiter, headers, body = self.waiter, self.headers, b"".join(self.body)
        self.waiter, self.headers, self.body = None, [], []
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), headers, body))

    def request(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


class Edge:
    def __init__(self, upstream_port: int, redis_url: str, verifier: TokenVerifier) -> None:
        self.upstream_port = upstream_port
        self.idle: deque[UpstreamConnection] = deque()
        self.verifier = verifier
        self.pipe = PipelinedRedis(redis_url)
        self.script = RedisScript(SCRIPT, Redis.from_url(redis_url), self.pipe)

    async def connection(self) -> UpstreamConnection:
        while self.idle:
            connection = self.idle.pop()
            if connection.keep_alive:
                return connection
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            UpstreamConnection, "127.0.0.1", self.upstream_port
        )
        return connection

    async def handle(self, path: bytes, headers: Headers, peer: str) -> Answer:
        named = dict(reversed(headers))
        scheme, _, token = named.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return refused(401)
        try:
            claims = await self.verifier.verify(token.strip())
        except InvalidToken:
            return refused(401)
        now = time.time()
        keys = [
            f"rl:user:{claims.subject}:{int(now // WINDOW)}",
            "-",
            "-",
            session_key(claims.session_id or "-"),
            user_key(claims.subject),
            EPOCH_KEY,
        ]
        try:
            general, _, _, revoked, not_before, complete = as_ints(
                await self.script.run(keys, [WINDOW, 60, 60, 0, 0, 1])
            )
        except OSError:
            return refused(503)
        if not complete:
            return refused(503)
        if revoked or (not_before >= 0 and claims.issued_at < not_before):
            return refused(401)
        request_id = named.get(b"x-request-id") or uuid.uuid4().hex.encode()
        lines = [b"GET ", path, b" HTTP/1.1\r\nhost: users\r\n"]
        for key, value in headers:
            if key not in HOP_BY_HOP and not key.startswith((b"x-forwarded-", b"x-user-")):
                lines += [key, b": ", value, b"\r\n"]
        lines += [
            b"x-forwarded-for: ",
            peer.encode(),
            b"\r\nx-forwarded-proto: http\r\nx-forwarded-host: ",
            named.get(b"host", b""),
            b"\r\nx-request-id: ",
            request_id,
            b"\r\n\r\n",
        ]
        connection = await self.connection()
        try:
            status, answer, body = await connection.request(b"".join(lines))
        except ConnectionError:
            return refused(502)
        if connection.keep_alive:
            self.idle.append(connection)
        out = [
            (key, value)
            for key, value in answer
            if key not in HOP_BY_HOP and key not in DROPPED_RESPONSE
        ]
        remaining = max(LIMIT - general, 0)
        reset = max(1, int(WINDOW - (now % WINDOW) + 0.999))
        out += SECURITY
        out += [
            (b"ratelimit-policy", b'"general";q=%d;w=%d' % (LIMIT, WINDOW)),
            (b"ratelimit", b'"general";r=%d;t=%d' % (remaining, reset)),
            (b"x-request-id", request_id),
            (b"content-length", b"%d" % len(body)),
        ]
        return status, out, body


class Client(asyncio.Protocol):
    """A client connection: requests parsed by httptools, each answered when it is done (wrk
    sends a connection's next request only after its answer, so that is their order)."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: Headers = []
        self.peer = ""
        self.pending: set[asyncio.Task[Answer]] = set()  # the loop keeps only weak references

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")[0]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        url, headers, self.url, self.headers = self.url, self.headers, b"", []
        assert self.transport is not None
        if url == b"/health":
            self.transport.write(HEALTH)
            return
        task = asyncio.ensure_future(self.edge.handle(url, headers, self.peer))
        self.pending.add(task)
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[Answer]) -> None:
        self.pending.discard(task)
        if self.transport is not None and not self.transport.is_closing():
            status, headers, body = task.result()
            head = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
            head += [b"%b: %b\r\n" % field for field in headers]
            self.transport.write(b"".join([*head, b"\r\n", body]))


def edge_from_env() -> Edge:
    verifier = TokenVerifier(
        JwksCache(http_jwks_fetcher(os.environ["JWKS_URL"])),
        issuer=os.environ["ISSUER"],
        audience=os.environ["AUDIENCE"],
        cache_size=10_000,
    )
    return Edge(int(os.environ["UPSTREAM_PORT"]), os.environ["REDIS_URL"], verifier)


async def serve(port: int) -> None:
    edge = edge_from_env()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(edge), "127.0.0.1", port)
    freeze_startup_heap()  # as common.serve.serve does for the services
    async with server:
        await server.serve_forever()


def asgi_app() -> ASGIApp:
    """The same edge as a plain ASGI app (no framework): one `http.response.start`, one body."""
    edges: list[Edge] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                edges.append(edge_from_env())
                freeze_startup_heap()
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            status, headers, body = 200, [(b"content-length", b"15")], b'{"status":"ok"}'
        else:
            client = scope["client"][0] if scope.get("client") else "0.0.0.0"
            status, headers, body = await edges[0].handle(
                scope["raw_path"], scope["headers"], client
            )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def start(
    upstream_port: int,
    redis_url: str,
    auth_url: str,
    issuer: str,
    audience: str,
    log_dir: Path,
    *,
    asgi: bool = False,
) -> Listener:
    """The edge floor as its own process (`python -m bench.edge_floor`), answering; `asgi` runs
    it as a plain ASGI app under uvicorn as the services are (common.serve), not on its own
    protocol: the difference is what the server layer costs."""
    port = free_port()
    env = {
        **os.environ,
        "EDGE_FLOOR_PORT": str(port),
        "EDGE_FLOOR_ASGI": "1" if asgi else "",
        "UPSTREAM_PORT": str(upstream_port),
        "REDIS_URL": redis_url,
        "JWKS_URL": f"{auth_url}/.well-known/jwks.json",
        "ISSUER": issuer,
        "AUDIENCE": audience,
    }
    name = "edge-floor-asgi" if asgi else "edge-floor"
    command = [sys.executable, "-m", "bench.edge_floor"]
    return start_listener(name, command, port, log_dir / f"{name}.log", env=env, cwd=ROOT)


def main() -> None:
    port = int(os.environ["EDGE_FLOOR_PORT"])
    if not os.environ.get("EDGE_FLOOR_ASGI"):
        uvloop.run(serve(port))
        return
    # As the services are served (common.serve): uvloop, httptools on the coalescing transport,
    # the lean response cycle, no access log, no Server or Date header.
    config = config_for(asgi_app(), "127.0.0.1", port)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
