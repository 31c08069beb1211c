"""`PageKit`: what a service needs to serve a hosted page (account links, sign-in, consent).

One Jinja2 environment over the service's own templates and the kit's (`kit/base.html`,
`kit/forms.html`, `kit/message.html`), one stylesheet served by the service itself (so the pages'
`style-src 'self'` holds behind the gateway), the response headers every page gets, and the form
reader that checks the CSRF token (`common.pages.csrf`) before the service sees a field.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from common.db import DatabaseUnavailable
from common.forms import FormRefused, parse_form
from common.pages.csrf import CsrfRefused, CsrfTokens, derive_key, new_nonce, well_formed_nonce
from common.settings import ServiceSettings

HERE = Path(__file__).parent
STYLESHEET = (HERE / "static" / "pages.css").read_bytes()
STYLESHEET_VERSION = hashlib.sha256(STYLESHEET).hexdigest()[:12]

# No script at all, styles from our own origin only, forms post to our own origin only, never in
# a frame, no <base> to redirect relative URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# A page that offers what only a script can do (WebAuthn has no form of its own): the service's
# one script file and its fetches to the same origin, nothing inline, no eval. Only such pages
# get it; every other page stays without script.
SCRIPT_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "default-src 'none';", "default-src 'none'; script-src 'self'; connect-src 'self';"
)
PAGE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # A page may carry a link's token in its form: no cache, shared or private, keeps it.
    "Cache-Control": "no-store",
}
CSRF_FIELD = "csrf_token"
FORM_BYTES = 16 * 1024
EXPIRED_FORM = (
    "This form has expired or did not come from this site. Open the link again and retry."
)


@dataclass(frozen=True, slots=True)
class PageScript:
    """The one script a service's pages may load, served by the service itself at `path` (a
    path the gateway routes to it, so `script-src 'self'` holds) and linked with its content
    hash: in the URL (`?v=`, a new file is a new URL past any cache) and as the tag's
    `integrity` (a file changed on the way is not run)."""

    path: str
    source: bytes

    @classmethod
    def of(cls, path: str, file: Path) -> PageScript:
        return cls(path, file.read_bytes())

    @property
    def url(self) -> str:
        return f"{self.path}?v={hashlib.sha256(self.source).hexdigest()[:12]}"

    @property
    def integrity(self) -> str:
        return "sha256-" + base64.b64encode(hashlib.sha256(self.source).digest()).decode("ascii")

    def route(self) -> Route:
        async def script(request: Request) -> Response:
            return Response(
                self.source,
                media_type="text/javascript",
                headers={
                    "Cache-Control": "public, max-age=86400",
                    "X-Content-Type-Options": "nosniff",
                },
            )

        return Route(self.path, script, methods=["GET"], include_in_schema=False)


class PageError(Exception):
    """A form post the page answers with an error page: `status` (400, 403, 413, 415, 422) and a
    message for the reader."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PageAnswer(Exception):
    """Raised by a page's handler to answer with `response` after the request's transaction is
    rolled back (`common.db.get_db` rolls back on any exception; `PageKit.install` registers the
    handler that sends the response). A form post that fails renders its error page this way, so
    nothing the service did before it failed is committed."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class PageKit:
    """One per service. `templates` is the service's own template folder (its pages extend
    `kit/base.html`); `stylesheet_path` is where the service serves the stylesheet (a path the
    gateway routes to it); `secret` is a deployment secret the CSRF key is derived from;
    `secure` says the public origin is HTTPS (then the cookie is `__Host-` prefixed and Secure)."""

    def __init__(
        self,
        templates: Path | None,
        *,
        stylesheet_path: str,
        secret: str,
        secure: bool,
        product: str = "Gatehouse",
        csrf_max_age: int = 3600,
        clock: Callable[[], float] = time.time,
        script: PageScript | None = None,
    ) -> None:
        loaders: list[FileSystemLoader] = [FileSystemLoader(HERE / "templates")]
        if templates is not None:
            loaders.insert(0, FileSystemLoader(templates))
        self.environment = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.stylesheet_path = stylesheet_path
        self.stylesheet_url = f"{stylesheet_path}?v={STYLESHEET_VERSION}"
        self.product = product
        self.script = script
        self.secure = secure
        self.cookie_name = "__Host-gatehouse-csrf" if secure else "gatehouse-csrf"
        self.csrf = CsrfTokens(derive_key(secret), max_age=csrf_max_age, clock=clock)

    @classmethod
    def for_service(
        cls,
        settings: ServiceSettings,
        templates: Path | None,
        *,
        stylesheet_path: str,
        clock: Callable[[], float] = time.time,
        script: PageScript | None = None,
    ) -> PageKit:
        """The kit as every service builds it: the CSRF key derived from INTERNAL_CLIENT_SECRET
        (architecture §1 says why), secure cookies when the public origin (ISSUER) is HTTPS."""
        return cls(
            templates,
            stylesheet_path=stylesheet_path,
            secret=settings.internal_client_secret.get_secret_value(),
            secure=settings.issuer.lower().startswith("https://"),
            clock=clock,
            script=script,
        )

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
        form: str | None = None,
        script: bool = False,
    ) -> HTMLResponse:
        """The page `template` with `context`; with `form` (the form's purpose, e.g.
        "users:reset-password"), `csrf_token` in the context and the CSRF cookie set; with
        `script`, the kit's script linked and allowed by the page's CSP (this page only)."""
        if script and self.script is None:
            raise ValueError("this kit has no script")
        values: dict[str, Any] = {
            "product": self.product,
            "stylesheet_url": self.stylesheet_url,
            "csrf_token": None,
            "script_url": self.script.url if script and self.script else None,
            "script_integrity": self.script.integrity if script and self.script else None,
            **(context or {}),
        }
        nonce = self._nonce(request) if form is not None else None
        if form is not None and nonce is not None:
            values["csrf_token"] = self.csrf.issue(form, nonce)
        html = self.environment.get_template(template).render(values)
        headers = dict(PAGE_HEADERS)
        if script:
            headers["Content-Security-Policy"] = SCRIPT_CONTENT_SECURITY_POLICY
        response = HTMLResponse(html, status_code=status, headers=headers)
        if nonce is not None:
            response.set_cookie(
                self.cookie_name,
                nonce,
                max_age=self.csrf.max_age,
                path="/",
                secure=self.secure,
                httponly=True,
                samesite="lax",
            )
        return response

    def message(
        self,
        request: Request,
        *,
        title: str,
        message: str,
        status: int = 200,
        kind: str = "error",
    ) -> HTMLResponse:
        """A page with a heading and one notice (`kind` "error" is an alert, "success" a status)."""
        return self.render(
            request,
            "kit/message.html",
            {"title": title, "message": message, "kind": kind},
            status=status,
        )

    async def read_form(
        self, request: Request, form: str, fields: frozenset[str]
    ) -> dict[str, str]:
        """The fields of a form post (strictly read: `common.forms.parse_form`), once its CSRF
        token is checked for `form` and the request's cookie; raises `PageError`."""
        body = await request.body()
        try:
            values = parse_form(
                body,
                request.headers.get("content-type"),
                fields=fields | {CSRF_FIELD},
                max_fields=len(fields) + 1,
                max_bytes=FORM_BYTES,
            )
        except FormRefused as exc:
            raise PageError(exc.status, exc.detail) from None
        try:
            self.csrf.check(
                form,
                request.cookies.get(self.cookie_name),
                values.pop(CSRF_FIELD, None),
                request.headers,
            )
        except CsrfRefused:
            raise PageError(403, EXPIRED_FORM) from None
        return values

    def install(self, app: Starlette) -> None:
        """Serve the stylesheet, answer `PageAnswer` with its page and a database outage on a
        page with a page (`install_outage_page`)."""

        async def answer(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, PageAnswer)
            return exc.response

        app.router.routes.append(self.stylesheet_route())
        if self.script is not None:
            app.router.routes.append(self.script.route())
        app.add_exception_handler(PageAnswer, answer)
        self.install_outage_page(app)

    def install_outage_page(self, app: Starlette) -> None:
        """A database outage (`common.db.DatabaseUnavailable`) on a page route — one declared
        with `response_class=HTMLResponse` — answers a 503 page with its `Retry-After`, as the
        page's other errors are pages; on any other route, problem+json as always."""

        async def outage(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, DatabaseUnavailable)
            route = request.scope.get("route")
            if getattr(route, "response_class", None) is not HTMLResponse:
                return exc.to_response(instance=request.url.path)
            page = self.message(
                request, title="Try again shortly", message=exc.detail or exc.title, status=503
            )
            page.headers.update(exc.headers)
            return page

        app.add_exception_handler(DatabaseUnavailable, outage)

    def stylesheet_route(self) -> Route:
        """The route serving the stylesheet at `stylesheet_path` (add it to the app)."""

        async def stylesheet(request: Request) -> Response:
            return Response(
                STYLESHEET,
                media_type="text/css",
                headers={
                    "Cache-Control": "public, max-age=86400",
                    "X-Content-Type-Options": "nosniff",
                },
            )

        return Route(self.stylesheet_path, stylesheet, methods=["GET"], include_in_schema=False)

    def csrf_nonce(self, request: Request) -> str | None:
        """The browser's CSRF cookie nonce (what its form tokens are bound to), if well formed:
        state a page keeps server-side for this browser can be bound to it too."""
        current = request.cookies.get(self.cookie_name)
        return current if well_formed_nonce(current) else None

    def _nonce(self, request: Request) -> str:
        """The cookie's nonce when it has one (shared with the origin's other pages), else new."""
        current = request.cookies.get(self.cookie_name)
        return current if well_formed_nonce(current) else new_nonce()
