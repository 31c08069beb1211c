"""The one answer of a proxied request: the upstream's, relayed, or the gateway's refusal as
problem+json (an HTML page on the hosted pages' routes); the edge's headers (security, CORS,
X-Request-ID, RateLimit) added to either."""

from __future__ import annotations

from starlette.types import Send

from gateway.edge import Headers, add_security_headers, client_response_headers
from gateway.problems import HTML, PAGE_HEADERS, PROBLEM, Refused
from gateway.upstream import Connection


class Reply:
    def __init__(self, send: Send, https: bool, cors: Headers, request_id: bytes) -> None:
        self.send = send
        self.https = https
        self.cors = cors
        # Added to every answer: X-Request-ID, then RateLimit-Policy / RateLimit once admitted.
        self.headers: Headers = [(b"x-request-id", request_id)]
        self.status = 500
        self.started = False

    async def start(self, status: int, headers: Headers) -> None:
        """`headers` is the answer's own list: the edge's headers are added to it."""
        self.started = True
        self.status = status
        add_security_headers(headers, self.https)
        headers.extend(self.cors)
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def relay(self, response: Connection) -> None:
        headers = client_response_headers(response.headers, keep_length=True)
        headers.extend(self.headers)
        body = response.body_if_complete()
        await self.start(response.status, headers)
        if body is not None:  # all of it arrived with the head (HEAD answers: nothing)
            await self.send({"type": "http.response.body", "body": body})
            return
        while (chunk := await response.read_chunk()) is not None:
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        await self.send({"type": "http.response.body", "body": b""})

    async def refuse(self, refused: Refused, instance: str, *, page: bool = False) -> None:
        """The refusal as problem+json, or on a hosted page's route (`page`) as an HTML page:
        a browser form expects one, and shows JSON as raw text."""
        body = refused.page() if page else refused.body(instance)
        headers: Headers = [
            (b"content-type", HTML if page else PROBLEM),
            (b"content-length", b"%d" % len(body)),
            *(PAGE_HEADERS if page else []),
            *self.headers,
            *refused.headers,
        ]
        await self.start(refused.status, headers)
        await self.send({"type": "http.response.body", "body": body})
