"""Refusals: raised wherever the gateway decides not to forward (or cannot), rendered once as
RFC 9457 problem+json by the exchange (`common.errors.problem_document`)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence

from common.errors import PROBLEM_JSON, problem_document

from gateway.edge import Headers

PROBLEM = PROBLEM_JSON.encode()
HTML = b"text/html; charset=utf-8"
# A refusal page has no script, style or form of its own: nothing to allow.
PAGE_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
]
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Gatehouse</title>
</head>
<body>
<main>
<h1>{title}</h1>
<p role="alert">{detail}</p>
<p>Go back and try again{later}.</p>
</main>
</body>
</html>
"""


class Refused(Exception):
    """An answer instead of the upstream's: `status`, `title`, `detail`, extra `headers`."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        headers: Headers | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers: Headers = headers or []
        self.errors = errors

    def body(self, instance: str) -> bytes:
        document = problem_document(
            self.status, self.title, self.detail, instance=instance, errors=self.errors
        )
        return json.dumps(document).encode()

    def page(self) -> bytes:
        """The refusal as a page, for a browser's navigation or form post on a hosted page."""
        retry = dict(self.headers).get(b"retry-after")
        later = f" in {int(retry)} seconds" if retry is not None and retry.isdigit() else ""
        return PAGE.format(
            title=html.escape(self.title), detail=html.escape(self.detail), later=later
        ).encode()


def unauthorized(detail: str, *, presented: bool) -> Refused:
    challenge = b'Bearer error="invalid_token"' if presented else b"Bearer"
    return Refused(401, "Unauthorized", detail, [(b"www-authenticate", challenge)])


def unavailable(detail: str, retry_after: int) -> Refused:
    return Refused(503, "Service Unavailable", detail, [(b"retry-after", b"%d" % retry_after)])


def too_large(detail: str = "The body is too large.") -> Refused:
    return Refused(413, "Content Too Large", detail)


def not_found() -> Refused:
    return Refused(404, "Not Found", "No such resource.")


def client_too_slow(timeout: float) -> Refused:
    return Refused(
        408,
        "Request Timeout",
        f"The body did not arrive in time (64 KiB per {timeout:g} s).",
        [(b"connection", b"close")],
    )


def uploads_refused(limit: int) -> Refused:
    """Too many streamed bodies from one client IP at once."""
    return Refused(
        429,
        "Too Many Requests",
        f"At most {limit} large uploads at once from one address.",
        [
            (b"retry-after", b"1"),
            (b"ratelimit-policy", b'"uploads";q=%d' % limit),
            (b"ratelimit", b'"uploads";r=0;t=1'),
        ],
    )
