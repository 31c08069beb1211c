"""The hot path, in plain ASGI: route, verify, one Redis call, then stream to the upstream over a
warm keep-alive pool (upstream.py) and stream the answer back. Everything else (health, metrics,
docs) goes to the FastAPI app beside it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from common.logs import accept_request_id, new_request_id, request_id_var
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import routes
from gateway.admission import admit
from gateway.bodies import BodyReader, BodyTooLarge, ClientGone, ClientTooSlow
from gateway.edge import Headers, add_security_headers
from gateway.forwarding import forward
from gateway.metrics import REQUESTS
from gateway.problems import Refused, client_too_slow, too_large
from gateway.replies import Reply
from gateway.routes import Route
from gateway.state import Edge

__all__ = ["Edge", "Exchange", "Gateway"]

logger = logging.getLogger("gatehouse.gateway")


# Each (route name, status)'s labels, built once (a name hashes once; a Route, every time).
_LABELS: dict[tuple[str, int], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def observe(route: Route, status: int, seconds: float) -> None:
    labels = _LABELS.get((route.name, status))
    if labels is None:
        labels = _LABELS[route.name, status] = (
            (route.name, route.upstream, str(status)),
            (route.name,),
        )
    REQUESTS.observe(labels[0], labels[1], seconds)


class Gateway:
    """The outermost middleware of the gateway's FastAPI app: proxied routes are answered here,
    in plain ASGI; the rest (health, metrics, docs, 404s) goes on to FastAPI (`ops`)."""

    def __init__(self, ops: ASGIApp, edge_of: Callable[[], Edge | None]) -> None:
        self.ops = ops
        self.edge_of = edge_of  # the Edge built by the lifespan, None before

    def answerer(self, scope: Scope) -> ASGIApp | None:
        """The answer of a proxied route's request, which the server starts in front of the
        FastAPI app (common.serve.answer_directly); None for any other. CORS preflights go
        through `__call__`."""
        edge = self.edge_of()
        if edge is None or scope["method"] == "OPTIONS":
            return None
        route = routes.match(scope["method"], scope["path"])
        return None if route is None else partial(self.exchange, edge, route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.ops(scope, receive, send)
            return
        edge: Edge | None = self.edge_of()
        if edge is not None and scope["method"] == "OPTIONS":
            origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
            if origin is not None:
                await self._preflight(edge, origin, send, self._https(scope, edge))
                return
        route = routes.match(scope["method"], scope["path"])
        if route is not None and edge is not None:
            await self.exchange(edge, route, scope, receive, send)
            return
        https = self._https(scope, edge)
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        cors: Headers = []
        if edge is not None and origin is not None and edge.cors.allowed(origin):
            cors = edge.cors.response_headers(origin)

        async def edge_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers", []))
                add_security_headers(out, https)
                out.extend(cors)
                message["headers"] = out
            await send(message)

        await self.ops(scope, receive, edge_send)

    async def exchange(
        self, edge: Edge, route: Route, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A proxied request, answered by its Exchange (which adds the edge's headers itself,
        replies.Reply)."""
        named = dict(reversed(scope["headers"]))  # name → value, the first of repeated fields
        origin = named.get(b"origin")
        cors: Headers = []
        if origin is not None and edge.cors.allowed(origin):
            cors = edge.cors.response_headers(origin)
        https = self._https(scope, edge)
        await Exchange(edge, route, scope, receive, send, named, https, cors).run()

    @staticmethod
    def _https(scope: Scope, edge: Edge | None) -> bool:
        if scope.get("scheme") == "https":
            return True
        client = scope.get("client")
        if edge is None or client is None or not edge.proxies.trusts(client[0]):
            return False
        return any(k == b"x-forwarded-proto" and v.lower() == b"https" for k, v in scope["headers"])

    @staticmethod
    async def _preflight(edge: Edge, origin: bytes, send: Send, https: bool) -> None:
        out: Headers = edge.cors.preflight_headers(origin) if edge.cors.allowed(origin) else []
        add_security_headers(out, https)
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})


class Exchange:
    """One proxied request: what it is (route, scope, headers, its body as it arrives, its
    answer), admitted (admission.py) then forwarded (forwarding.py); a refusal raised by either
    is rendered here, once."""

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
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.named = named
        self.https = https
        inbound = named.get(b"x-request-id")
        self.request_id = accept_request_id(inbound) if inbound else new_request_id()
        self.body = BodyReader(receive, edge.body_timeout, edge.max_body)
        self.reply = Reply(send, https, cors, self.request_id.encode())

    def header(self, name: bytes) -> bytes | None:
        """The first field of that name."""
        return self.named.get(name)

    async def run(self) -> None:
        token = request_id_var.set(self.request_id)
        began = time.perf_counter()
        reply = self.reply
        try:
            await forward(self, await admit(self))
        except (Refused, ClientTooSlow, BodyTooLarge) as exc:
            if not reply.started:
                await reply.refuse(self._refusal(exc), self.scope["path"], page=self.route.page)
        except ClientGone:
            reply.status = 499
        except Exception:
            logger.exception("gateway error on %s", self.route.name)
            if not reply.started:
                failed = Refused(502, "Bad Gateway", "The upstream answer could not be relayed.")
                await reply.refuse(failed, self.scope["path"], page=self.route.page)
        finally:
            observe(self.route, reply.status, time.perf_counter() - began)
            request_id_var.reset(token)

    def _refusal(self, exc: Exception) -> Refused:
        if isinstance(exc, Refused):
            return exc
        if isinstance(exc, ClientTooSlow):
            return client_too_slow(self.edge.body_timeout)
        return too_large()
