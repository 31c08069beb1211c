"""The authorization endpoint and its hosted pages (API.md §13): sign-in, consent.

`GET /authorize` reads the request (`auth.oidc.requests`) and either answers at once (a live
sign-on session, consent already given: a redirect with the code) or shows the sign-in or consent
page. Those pages post back to `/authorize` and `/authorize/consent` with the request's own query
string, so that no state is kept between the steps but the sign-on session itself; each post
checks the request again, and its CSRF token (`common.pages`).
"""

from __future__ import annotations

from common.db import DbDep
from common.errors import EmailNotVerified, ServiceUnavailable, Unauthorized
from common.forms import SECOND_FACTOR_FIELDS as PAGE_SECOND_FACTOR_FIELDS
from common.forms import SIGN_IN_FIELDS as PAGE_SIGN_IN_FIELDS
from common.pages import PageError, PageKit
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from auth.mfa.exceptions import SecondFactorRefused
from auth.oidc.dependencies import OidcServiceDep, PageKitDep
from auth.oidc.models import SsoSession
from auth.oidc.pages import (
    SsoCookie,
    code_redirect,
    error_redirect,
    flow_page,
    sso_cookie,
)
from auth.oidc.requests import (
    AuthorizationRefused,
    AuthorizationRequest,
    ClientUnidentified,
    read_authorization_request,
)
from auth.oidc.service import OidcService
from auth.sessions.dependencies import SessionServiceDep
from auth.sessions.schemas import LOGIN_NAME_LENGTH, LOGIN_PASSWORD_LENGTH
from auth.sessions.service import PASSWORD_LOGIN_AMR, SECOND_FACTOR_LOGIN_AMR

router = APIRouter(prefix="/api/v1/auth", tags=["openid connect"])

AUTHORIZE_PATH = "/api/v1/auth/authorize"
CONSENT_PATH = "/api/v1/auth/authorize/consent"
SIGN_IN_FORM = "auth:sign-in"
CONSENT_FORM = "auth:consent"
# The page's fields as the gateway reads them for the login limits (common.forms), the CSRF
# token aside (the kit reads it).
SIGN_IN_FIELDS = PAGE_SIGN_IN_FIELDS - {"csrf_token"}
CONSENT_FIELDS = frozenset({"decision"})
SECOND_FACTOR_PATH = "/api/v1/auth/authorize/mfa"
SECOND_FACTOR_FORM = "auth:second-factor"
SECOND_FACTOR_FIELDS = PAGE_SECOND_FACTOR_FIELDS - {"csrf_token"}
MAX_CODE_LENGTH = 64
MAX_TICKET_LENGTH = 256
WRONG_CODE = "The code is wrong or has expired. Try the current code, or start again."
WRONG_PASSWORD = "Incorrect username or password."
SCOPE_TEXTS = {
    "openid": "know that it is you (your account id)",
    "profile": "see your username and name",
    "email": "see your email address and whether it is verified",
}


def _scope_text(scope: str) -> str:
    return SCOPE_TEXTS.get(scope, f"act with your permission “{scope}”, if you hold it")


class Flow:
    """One authorization request being served: the pieces every step needs."""

    def __init__(
        self, request: Request, kit: PageKit, oidc: OidcService, cookie: SsoCookie
    ) -> None:
        self.request = request
        self.kit = kit
        self.oidc = oidc
        self.cookie = cookie
        self.issuer: str = request.app.state.settings.issuer
        self.account_url: str = request.app.state.settings.account_pages_url

    def sign_in_page(
        self,
        flow: AuthorizationRequest,
        *,
        error: str | None = None,
        username: str = "",
        status: int = 200,
    ) -> HTMLResponse:
        return flow_page(
            self.kit,
            self.request,
            flow,
            "oidc/sign_in.html",
            {
                "client_name": flow.client.name,
                "action": f"{AUTHORIZE_PATH}?{flow.query}",
                "error": error,
                "username": username,
                "forgot_url": f"{self.account_url}/reset-password",
            },
            form=SIGN_IN_FORM,
            status=status,
        )

    def second_factor_page(
        self,
        flow: AuthorizationRequest,
        ticket: str,
        *,
        error: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        return flow_page(
            self.kit,
            self.request,
            flow,
            "oidc/second_factor.html",
            {
                "client_name": flow.client.name,
                "action": f"{SECOND_FACTOR_PATH}?{flow.query}",
                "mfa_token": ticket,
                "error": error,
                "restart_url": f"{AUTHORIZE_PATH}?{flow.query}",
            },
            form=SECOND_FACTOR_FORM,
            status=status,
        )

    async def after_sign_in(
        self, flow: AuthorizationRequest, sso: SsoSession, *, asked_consent: bool
    ) -> Response:
        """The consent page when it is needed, else the code back to the client."""
        if await self.oidc.needs_consent(sso.user_id, flow, asked=asked_consent):
            if "none" in flow.prompt:
                refused = flow.refuse("consent_required", "The user has not allowed this app.")
                return error_redirect(refused, self.issuer, self.request)
            return flow_page(
                self.kit,
                self.request,
                flow,
                "oidc/consent.html",
                {
                    "client_name": flow.client.name,
                    "scopes": [_scope_text(scope) for scope in sorted(flow.scopes)],
                    "username": await self.oidc.display_name(sso),
                    "action": f"{CONSENT_PATH}?{flow.query}",
                },
                form=CONSENT_FORM,
            )
        code = await self.oidc.issue_code(flow, sso)
        return code_redirect(flow, code, self.issuer, self.request)


async def _start(
    request: Request, kit: PageKit, oidc: OidcService, db: DbDep
) -> tuple[Flow, AuthorizationRequest] | Response:
    """The flow and its checked request, or the answer that ends it here (an error page, or an
    error back to the client)."""
    cookie = sso_cookie(request.app.state.settings)
    try:
        flow = await read_authorization_request(
            db, request.query_params.multi_items(), request.url.query
        )
    except ClientUnidentified as exc:
        return kit.message(request, title="Sign-in failed", message=exc.message, status=400)
    except AuthorizationRefused as exc:
        return error_redirect(exc, request.app.state.settings.issuer, request)
    if cookie is None:
        return kit.message(
            request,
            title="Sign-in unavailable",
            message="Signing in needs HTTPS (ISSUER is plain HTTP and not loopback).",
            status=400,
        )
    return Flow(request, kit, oidc, cookie), flow


@router.get("/authorize", response_class=HTMLResponse, responses={302: {"description": "back"}})
async def authorize(request: Request, db: DbDep, oidc: OidcServiceDep, kit: PageKitDep) -> Response:
    """OpenID Connect authorization endpoint (authorization code + PKCE `S256`). Signs the user in
    (or finds their sign-on session), asks consent for a third-party client, then redirects to
    the client's `redirect_uri` with `code`, `state` and `iss`. A bad `client_id` or
    `redirect_uri` is an error page and never a redirect."""
    started = await _start(request, kit, oidc, db)
    if isinstance(started, Response):
        return started
    steps, flow = started
    sso = await oidc.live_sso(steps.cookie.read(request))
    if oidc.needs_fresh_sign_in(flow, sso):
        if "none" in flow.prompt:
            refused = flow.refuse("login_required", "The user is not signed in.")
            return error_redirect(refused, steps.issuer, request)
        return steps.sign_in_page(flow)
    assert sso is not None
    return await steps.after_sign_in(flow, sso, asked_consent="consent" in flow.prompt)


@router.post("/authorize", include_in_schema=False)
async def sign_in(
    request: Request,
    db: DbDep,
    oidc: OidcServiceDep,
    kit: PageKitDep,
    sessions: SessionServiceDep,
) -> Response:
    """The sign-in page's post: username (or email) and password, then the flow goes on."""
    started = await _start(request, kit, oidc, db)
    if isinstance(started, Response):
        return started
    steps, flow = started
    try:
        values = await kit.read_form(request, SIGN_IN_FORM, SIGN_IN_FIELDS)
    except PageError as exc:
        return steps.sign_in_page(flow, error=exc.message, status=exc.status)
    username, password = values.get("username", ""), values.get("password", "")
    if not (0 < len(username) <= LOGIN_NAME_LENGTH and 0 < len(password) <= LOGIN_PASSWORD_LENGTH):
        return steps.sign_in_page(
            flow, error="Enter your username or email and your password.", status=422
        )
    try:
        user = await sessions.authenticate(username, password)
    except Unauthorized:
        return steps.sign_in_page(flow, error=WRONG_PASSWORD, username=username, status=401)
    except EmailNotVerified as exc:  # REQUIRE_VERIFIED_EMAIL, after the right password
        return steps.sign_in_page(flow, error=str(exc.detail), username=username, status=403)
    except ServiceUnavailable:
        return steps.sign_in_page(
            flow,
            error="Signing in is not possible right now; try again shortly.",
            username=username,
            status=503,
        )
    if await sessions.second_factors.is_enabled(user.user_id):
        # The second step's page: the ticket (committed with this answer) carries the
        # password's success to it, as the login endpoint's mfa_token does.
        ticket = await sessions.second_factors.open_ticket(user.user_id)
        return steps.second_factor_page(flow, ticket)
    current = await oidc.live_sso(steps.cookie.read(request))
    token, sso = await oidc.start_sso(user.user_id, PASSWORD_LOGIN_AMR, current)
    response = await steps.after_sign_in(flow, sso, asked_consent="consent" in flow.prompt)
    steps.cookie.set(response, token)
    return response


@router.post("/authorize/mfa", include_in_schema=False)
async def second_factor(
    request: Request,
    db: DbDep,
    oidc: OidcServiceDep,
    kit: PageKitDep,
    sessions: SessionServiceDep,
) -> Response:
    """The second-factor page's post: the ticket of the password step and a TOTP or recovery
    code. A wrong code spends one of the ticket's attempts (committed with the page)."""
    started = await _start(request, kit, oidc, db)
    if isinstance(started, Response):
        return started
    steps, flow = started
    try:
        values = await kit.read_form(request, SECOND_FACTOR_FORM, SECOND_FACTOR_FIELDS)
    except PageError as exc:
        return kit.message(request, title="Not allowed", message=exc.message, status=exc.status)
    ticket, code = values.get("mfa_token", ""), values.get("code", "").strip()
    if not ticket or not code or len(code) > MAX_CODE_LENGTH or len(ticket) > MAX_TICKET_LENGTH:
        return steps.second_factor_page(flow, ticket, error="Enter the code.", status=422)
    try:
        account = await sessions.second_step(ticket, code)
    except SecondFactorRefused:
        return steps.second_factor_page(flow, ticket, error=WRONG_CODE, status=401)
    current = await oidc.live_sso(steps.cookie.read(request))
    token, sso = await oidc.start_sso(account.user_id, SECOND_FACTOR_LOGIN_AMR, current)
    response = await steps.after_sign_in(flow, sso, asked_consent="consent" in flow.prompt)
    steps.cookie.set(response, token)
    return response


@router.post("/authorize/consent", include_in_schema=False)
async def consent(request: Request, db: DbDep, oidc: OidcServiceDep, kit: PageKitDep) -> Response:
    """The consent page's post: `decision` allow (remembered for this client and these scopes)
    or deny (`access_denied` back to the client)."""
    started = await _start(request, kit, oidc, db)
    if isinstance(started, Response):
        return started
    steps, flow = started
    sso = await oidc.live_sso(steps.cookie.read(request))
    if sso is None:
        return steps.sign_in_page(flow)
    try:
        values = await kit.read_form(request, CONSENT_FORM, CONSENT_FIELDS)
    except PageError as exc:
        return kit.message(request, title="Not allowed", message=exc.message, status=exc.status)
    decision = values.get("decision")
    if decision == "deny":
        refused = flow.refuse("access_denied", "The user denied the request.")
        return error_redirect(refused, steps.issuer, request)
    if decision != "allow":
        return kit.message(
            request, title="Not allowed", message="Choose Allow or Deny.", status=422
        )
    await oidc.remember_consent(sso.user_id, flow)
    code = await oidc.issue_code(flow, sso)
    return code_redirect(flow, code, steps.issuer, request)
