"""What the hosted sign-in, consent and sign-out pages share: the sign-on cookie, the pages'
headers for a flow that ends at a client, and the redirects back to it.

The sign-on cookie is `__Host-gatehouse-sso` (Secure, HttpOnly, SameSite=Lax, Path=/, no Domain)
when ISSUER is HTTPS. Over plain HTTP there is no Secure cookie to set, so the development
fallback is `gatehouse-sso` (HttpOnly, SameSite=Lax, not Secure), and only when ISSUER's host is
loopback; any other plain-HTTP issuer gets no sign-in page at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from common.pages import PageKit
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from auth.clients.uris import is_loopback_host
from auth.oidc.requests import AuthorizationRefused, AuthorizationRequest, redirect_to
from auth.settings import AuthSettings

SECURE_COOKIE = "__Host-gatehouse-sso"
DEVELOPMENT_COOKIE = "gatehouse-sso"
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
# What the API document says the pages answer: an HTML page (the next step, or the error), or a
# redirect back to the client.
PAGE_ANSWERS: dict[int, str] = {
    200: "The page (the next step of the flow)",
    302: "Back to the client's redirect URI (a code, or an OAuth error)",
    400: "An error page: the request names no registered client and redirect URI of it, or "
    "is malformed (never a redirect)",
    401: "The page again: the username or password is wrong",
    403: "The page again: the form's CSRF token is wrong, or the address is not verified",
    413: "An error page: the form is too large",
    415: "An error page: the body is not an HTML form",
    422: "The page again: a field is missing or too long",
    503: "The page again: signing in is not possible right now",
}


def page_answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    html = {"text/html": {"schema": {"type": "string"}}}
    return {status: {"description": PAGE_ANSWERS[status], "content": html} for status in statuses}


def form_fields(lengths: dict[str, int], *required: str) -> dict[str, Any]:
    """`openapi_extra` declaring a page's form post: string fields of at most these lengths."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "maxLength": n} for name, n in lengths.items()},
        "required": list(required),
        "additionalProperties": False,  # common.forms.parse_form refuses any other field
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


@dataclass(frozen=True, slots=True)
class SsoCookie:
    name: str
    secure: bool
    max_age: int

    def read(self, request: Request) -> str | None:
        return request.cookies.get(self.name)

    def set(self, response: Response, value: str) -> None:
        response.set_cookie(
            self.name,
            value,
            max_age=self.max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self.name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )


def sso_cookie(settings: AuthSettings) -> SsoCookie | None:
    """The sign-on cookie for ISSUER's scheme and host, or None where none may be set."""
    issuer = urlsplit(settings.issuer)
    if issuer.scheme == "https":
        return SsoCookie(SECURE_COOKIE, True, settings.sso_session_ttl)
    if issuer.scheme == "http" and issuer.hostname and is_loopback_host(issuer.hostname):
        return SsoCookie(DEVELOPMENT_COOKIE, False, settings.sso_session_ttl)
    return None


def origin_of(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def allow_form_target(response: HTMLResponse, redirect_uri: str) -> HTMLResponse:
    """Let the page's form lead to the client: `form-action` governs the redirects that follow a
    form post too (Chromium enforces it), and the post's answer redirects to the client."""
    policy = response.headers["content-security-policy"]
    response.headers["content-security-policy"] = policy.replace(
        "form-action 'self'", f"form-action 'self' {origin_of(redirect_uri)}"
    )
    return response


def flow_page(
    kit: PageKit,
    request: Request,
    flow: AuthorizationRequest,
    template: str,
    context: dict[str, object],
    *,
    form: str,
    status: int = 200,
    script: bool = False,
) -> HTMLResponse:
    response = kit.render(request, template, context, status=status, form=form, script=script)
    return allow_form_target(response, flow.redirect_uri)


def redirect(url: str, request: Request) -> RedirectResponse:
    """302 after a GET, 303 after a form post (the client's page is then fetched with GET)."""
    status = 302 if request.method == "GET" else 303
    return RedirectResponse(url, status_code=status, headers=REDIRECT_HEADERS)


def error_redirect(refused: AuthorizationRefused, issuer: str, request: Request) -> Response:
    """RFC 6749 §4.1.2.1 error parameters, `state` unchanged and `iss` (RFC 9207)."""
    parameters = {"error": refused.error, "error_description": refused.description}
    if refused.state is not None:
        parameters["state"] = refused.state
    parameters["iss"] = issuer
    return redirect(redirect_to(refused.redirect_uri, parameters), request)


def code_redirect(flow: AuthorizationRequest, code: str, issuer: str, request: Request) -> Response:
    parameters = {"code": code}
    if flow.state is not None:
        parameters["state"] = flow.state
    parameters["iss"] = issuer
    return redirect(redirect_to(flow.redirect_uri, parameters), request)
