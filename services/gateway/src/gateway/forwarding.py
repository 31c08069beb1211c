"""Sending an admitted request to its upstream and relaying the answer: the body policy (read
whole, or streamed under a per-IP cap), the circuit breaker, one retry for idempotent requests,
and what each failure answers. Refusals are raised as `Refused`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from gateway.admission import Admitted
from gateway.bodies import BUFFERED_BODY, BodyTooLarge, ClientGone, ClientTooSlow
from gateway.breaker import CircuitBreaker
from gateway.edge import upstream_request_headers
from gateway.metrics import UPSTREAM_ERRORS
from gateway.problems import Refused, unavailable, uploads_refused
from gateway.upstream import Connection, PoolBusy, UpstreamError

if TYPE_CHECKING:
    from gateway.proxy import Exchange

logger = logging.getLogger("gatehouse.gateway")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
Body = bytes | AsyncIterator[bytes] | None


async def forward(exchange: Exchange, admitted: Admitted) -> None:
    edge, scope, reader = exchange.edge, exchange.scope, exchange.body
    upstream = exchange.route.upstream
    breaker = edge.breakers[upstream]
    query: bytes = scope.get("query_string", b"")
    target = admitted.raw_path + b"?" + query if query else admitted.raw_path
    headers = outbound_headers(exchange, admitted.client_ip)
    # Bodies up to 64 KiB are read whole before a connection is taken (one write upstream, an
    # idempotent request can be sent again, and a client holding its body back holds no
    # connection); larger ones, and chunked ones past 64 KiB, are streamed through. Either way
    # the size limit is checked first: Content-Length on arrival, chunks as they come.
    body, length = admitted.body, admitted.length
    first: list[bytes] | None = None
    if body is None and length:
        if length <= BUFFERED_BODY:
            body = await reader.read(length)
        else:
            first = []
    elif body is None and length is None and exchange.header(b"transfer-encoding"):
        first = await reader.read_up_to(BUFFERED_BODY)
        if reader.done:
            body, first = b"".join(first), None
    streaming = first is not None
    # A streamed body is still on its way: never the half-open probe.
    if not breaker.allow(probe=not streaming):
        UPSTREAM_ERRORS.labels(upstream, "circuit_open").inc()
        raise unavailable(f"The {upstream} service is unavailable.", retry_after=5)
    probe = breaker.opened_at is not None  # let through while not closed: the probe
    if first is None:
        await attempt(exchange, target, headers, body, None, breaker, probe)
        return
    address = admitted.address
    uploads = edge.uploads.get(address, 0)
    if uploads >= edge.uploads_per_ip:
        raise uploads_refused(edge.uploads_per_ip)  # never the probe: the circuit is closed
    edge.uploads[address] = uploads + 1
    try:
        await attempt(exchange, target, headers, reader.stream(first), length, breaker, probe)
    finally:
        left = edge.uploads[address] - 1
        if left:
            edge.uploads[address] = left
        else:
            del edge.uploads[address]


async def attempt(
    exchange: Exchange,
    target: bytes,
    headers: bytes,
    body: Body,
    length: int | None,
    breaker: CircuitBreaker,
    probe: bool,
) -> None:
    """Send and relay, once more after a connection failure when the request is idempotent
    and its body is in hand."""
    method, reply = exchange.scope["method"], exchange.reply
    upstream = exchange.route.upstream
    # In hand is bytes or None (a streamed body is an AsyncIterator: an ABC, slower to ask).
    in_hand = body is None or isinstance(body, bytes)
    attempts = 2 if method in IDEMPOTENT and in_hand else 1
    client = exchange.edge.upstreams[upstream]
    for tried in range(1, attempts + 1):
        response: Connection | None = None
        try:
            response = await client.request(method, target, headers, body, length=length)
            breaker.success()
            await reply.relay(response)
            return
        except (BodyTooLarge, ClientTooSlow, ClientGone, PoolBusy) as exc:
            # The client's doing, or the gateway's own limit: nothing about the upstream.
            if probe:
                breaker.release()
            if not isinstance(exc, PoolBusy) or reply.started:
                raise
            UPSTREAM_ERRORS.labels(upstream, "pool_busy").inc()
            raise unavailable(f"The {upstream} service is busy.", retry_after=1) from None
        except TimeoutError:
            breaker.failure()
            UPSTREAM_ERRORS.labels(upstream, "timeout").inc()
            if reply.started:
                return
            raise Refused(
                504, "Gateway Timeout", f"The {upstream} service did not answer in time."
            ) from None
        except UpstreamError as exc:
            if reply.started:
                logger.warning("upstream %s broke mid-response: %s", upstream, type(exc).__name__)
                return
            if tried < attempts:
                continue
            breaker.failure()
            UPSTREAM_ERRORS.labels(upstream, "connect").inc()
            raise unavailable(f"The {upstream} service is unavailable.", retry_after=1) from None
        finally:
            if response is not None:
                response.finish()


def outbound_headers(exchange: Exchange, client_ip: str) -> bytes:
    """The header lines for the upstream (Host and framing are the client's to add)."""
    out: dict[bytes, bytes] = {}
    named = exchange.named
    for key, value in upstream_request_headers(exchange.headers, b"connection" in named):
        if key in out:  # repeated fields fold into one (cookies with "; ", RFC 6265)
            out[key] += (b"; " if key == b"cookie" else b", ") + value
        else:
            out[key] = value
    host = named.get(b"host")
    out[b"x-forwarded-for"] = client_ip.encode("latin-1")
    out[b"x-forwarded-proto"] = b"https" if exchange.https else b"http"
    if host is not None:
        out[b"x-forwarded-host"] = host
    out[b"x-request-id"] = exchange.request_id.encode("latin-1")
    # The server's parser lets no CR or LF into a name or value; never send one on.
    values = b"".join(out.values())
    if b"\n" in values or b"\r" in values:
        raise ValueError("a header holds a line break")
    return b"".join([key + b": " + value + b"\r\n" for key, value in out.items()])
