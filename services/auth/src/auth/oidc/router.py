"""The authorization endpoint and its hosted pages (API.md §13): sign-in, consent.

`GET /authorize` reads the request (`auth.oidc.requests`) and either answers at once (a live
sign-on session, consent already given: a redirect with the code) or shows the sign-in or consent
page. Those pages post back to `/authorize` and `/authorize/consent` with the request's own query
string, so that no state is kept between the steps but the sign-on session itself; each post
checks the request again, and its CSRF token (`common.pages`).
"""

from __future__ import annotations

from http import HTTPStatus

from common.db import DbDep
from common.errors import EmailNotVerified, ServiceUnavailable, Unauthorized, problem
from common.forms import SECOND_FACTOR_FIELDS as PAGE_SECOND_FACTOR_FIELDS
from common.forms import SIGN_IN_FIELDS as PAGE_SIGN_IN_FIELDS
from common.pages import PageError, PageKit
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from auth.mfa.exceptions import SecondFactorRefused
from auth.oidc.dependencies import OidcServiceDep, PageKitDep
from auth.oidc.models import SsoSession
from auth.oidc.pages import (
    SsoCookie,
    code_redirect,
    error_redirect,
    flow_page,
    form_fields,
    page_answers,
    sso_cookie,
)
from auth.oidc.requests import (
    AuthorizationRefused,
    AuthorizationRequest,
    ClientUnidentified,
    read_authorization_request,
)
from auth.oidc.service import OidcService
from auth.passkeys.dependencies import PasskeysDep
from auth.passkeys.exceptions import PasskeyRefused
from auth.passkeys.service import (
    Passkeys,
    PasskeySignIn,
    offered,
    read_credential,
    sign_in_amr,
)
from auth.sessions.dependencies import SessionServiceDep
from auth.sessions.schemas import LOGIN_NAME_LENGTH, LOGIN_PASSWORD_LENGTH
from auth.sessions.service import PASSWORD_LOGIN_AMR, SECOND_FACTOR_LOGIN_AMR
from auth.state import auth_state

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
# Passkeys (API.md §13): the options (a challenge) are fetched by passkeys.js, the answer is a
# form post, on the sign-in page (no password) and on the second-factor page.
PASSKEY_PATH = "/api/v1/auth/authorize/passkey"
PASSKEY_OPTIONS_PATH = "/api/v1/auth/authorize/passkey/options"
SECOND_FACTOR_OPTIONS_PATH = "/api/v1/auth/authorize/mfa/options"
PASSKEY_FIELDS = frozenset({"credential"})
WRONG_CODE = "The code is wrong or has expired. Try the current code, or start again."
WRONG_PASSKEY = "That passkey was not accepted. Try again, or use your code."
PASSKEY_REFUSED = "That passkey was not accepted. Try again, or sign in with your password."
WRONG_PASSWORD = "Incorrect username or password."
UNAVAILABLE = "Signing in is not possible right now; try again shortly."
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
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
        self.issuer: str = auth_state(request).settings.issuer
        self.account_url: str = auth_state(request).settings.account_pages_url

    def sign_in_page(
        self,
        flow: AuthorizationRequest,
        *,
        error: str | None = None,
        username: str = "",
        status: int = 200,
    ) -> HTMLResponse:
        passkey = None
        if offered(auth_state(self.request).settings):
            passkey = {
                "action": f"{PASSKEY_PATH}?{flow.query}",
                "options_url": f"{PASSKEY_OPTIONS_PATH}?{flow.query}",
                "mfa_token": None,
                "label": "Sign in with a passkey",
            }
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
                "passkey": passkey,
            },
            form=SIGN_IN_FORM,
            status=status,
            script=passkey is not None,
        )

    def account_refused_page(
        self,
        flow: AuthorizationRequest,
        refusal: EmailNotVerified | ServiceUnavailable,
        *,
        username: str = "",
    ) -> HTMLResponse:
        """The sign-in page again when the credentials were right but the account cannot sign in
        now: its email unverified (REQUIRE_VERIFIED_EMAIL, 403) or users unreachable (503)."""
        if isinstance(refusal, EmailNotVerified):
            return self.sign_in_page(flow, error=str(refusal.detail), username=username, status=403)
        return self.sign_in_page(flow, error=UNAVAILABLE, username=username, status=503)

    def second_factor_page(
        self,
        flow: AuthorizationRequest,
        ticket: str,
        *,
        passkey: bool,
        error: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        """The code form, and with `passkey` (the account has one) the passkey's beside it."""
        offer = None
        if passkey:
            offer = {
                "action": f"{SECOND_FACTOR_PATH}?{flow.query}",
                "options_url": f"{SECOND_FACTOR_OPTIONS_PATH}?{flow.query}",
                "mfa_token": ticket,
                "label": "Use a passkey instead",
            }
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
                "passkey": offer,
            },
            form=SECOND_FACTOR_FORM,
            status=status,
            script=passkey,
        )

    def binding(self, flow: AuthorizationRequest) -> str:
        """What a passkey challenge of this page is bound to: the browser (its CSRF cookie's
        nonce, checked by the form reader before this is asked) and the authorization request."""
        return f"{self.kit.csrf_nonce(self.request) or ''}\n{flow.query}"

    async def signed_in(
        self, flow: AuthorizationRequest, user_id: str, amr: tuple[str, ...]
    ) -> Response:
        """A sign-in that just succeeded: its sign-on session (the cookie set), then on."""
        current = await self.oidc.live_sso(self.cookie.read(self.request))
        token, sso = await self.oidc.start_sso(user_id, amr, current)
        response = await self.after_sign_in(flow, sso, asked_consent="consent" in flow.prompt)
        self.cookie.set(response, token)
        return response

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
    cookie = sso_cookie(auth_state(request).settings)
    try:
        flow = await read_authorization_request(
            db, request.query_params.multi_items(), request.url.query
        )
    except ClientUnidentified as exc:
        return kit.message(request, title="Sign-in failed", message=exc.message, status=400)
    except AuthorizationRefused as exc:
        return error_redirect(exc, auth_state(request).settings.issuer, request)
    if cookie is None:
        return kit.message(
            request,
            title="Sign-in unavailable",
            message="Signing in needs HTTPS (ISSUER is plain HTTP and not loopback).",
            status=400,
        )
    return Flow(request, kit, oidc, cookie), flow


@router.get(
    "/authorize", response_class=HTMLResponse, responses=page_answers(302, 400, 401, 403, 503)
)
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


# Declared (schemathesis: POST answered 415 where the document said the path has no POST): the
# sign-in page posts here, with the authorization request's own query string.
@router.post(
    "/authorize",
    response_class=HTMLResponse,
    responses=page_answers(302, 400, 401, 403, 413, 415, 422, 503),
    openapi_extra=form_fields(
        {"username": LOGIN_NAME_LENGTH, "password": LOGIN_PASSWORD_LENGTH, "csrf_token": 256},
        "username",
        "password",
        "csrf_token",
    ),
)
async def sign_in(
    request: Request,
    db: DbDep,
    oidc: OidcServiceDep,
    kit: PageKitDep,
    sessions: SessionServiceDep,
    passkeys: PasskeysDep,
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
    except (EmailNotVerified, ServiceUnavailable) as exc:  # after the right password
        return steps.account_refused_page(flow, exc, username=username)
    if await sessions.second_factors.is_enabled(user.user_id):
        # The second step's page: the ticket (committed with this answer) carries the
        # password's success to it, as the login endpoint's mfa_token does.
        ticket = await sessions.second_factors.open_ticket(user.user_id)
        return steps.second_factor_page(
            flow, ticket, passkey=await _offers_passkey(request, passkeys, user.user_id)
        )
    return await steps.signed_in(flow, user.user_id, PASSWORD_LOGIN_AMR)


async def _offers_passkey(request: Request, passkeys: Passkeys, user_id: str | None) -> bool:
    if user_id is None or not offered(auth_state(request).settings):
        return False
    return await passkeys.has_passkeys(user_id)


@router.post("/authorize/mfa", response_class=HTMLResponse, include_in_schema=False)
async def second_factor(
    request: Request,
    db: DbDep,
    oidc: OidcServiceDep,
    kit: PageKitDep,
    sessions: SessionServiceDep,
    passkeys: PasskeysDep,
) -> Response:
    """The second-factor page's post: the ticket of the password step and a TOTP or recovery
    code, or the answer of one of the account's passkeys. A wrong code or passkey spends one
    of the ticket's attempts (committed with the page)."""
    started = await _start(request, kit, oidc, db)
    if isinstance(started, Response):
        return started
    steps, flow = started
    try:
        values = await kit.read_form(request, SECOND_FACTOR_FORM, SECOND_FACTOR_FIELDS)
    except PageError as exc:
        return kit.message(request, title="Not allowed", message=exc.message, status=exc.status)
    ticket, code = values.get("mfa_token", ""), values.get("code", "").strip()
    credential = values.get("credential")

    async def page(error: str, status: int) -> HTMLResponse:
        user_id = await sessions.second_factors.ticket_user(ticket) if ticket else None
        offer = await _offers_passkey(request, passkeys, user_id)
        return steps.second_factor_page(flow, ticket, passkey=offer, error=error, status=status)

    if credential is not None and not code and ticket and len(ticket) <= MAX_TICKET_LENGTH:
        signed: list[PasskeySignIn] = []

        async def passkey_of(user_id: str) -> str | None:
            try:
                answer = read_credential(credential)
                signed.append(
                    await passkeys.verify_assertion(answer, user_id, binding=steps.binding(flow))
                )
            except PasskeyRefused:
                return None
            return "passkey"

        try:
            account = await sessions.second_step_with(ticket, passkey_of)
        except SecondFactorRefused:
            return await page(WRONG_PASSKEY, 401)
        amr = sign_in_amr(signed[0], after_password=True)
        return await steps.signed_in(flow, account.user_id, amr)
    if not ticket or not code or len(code) > MAX_CODE_LENGTH or len(ticket) > MAX_TICKET_LENGTH:
        return await page("Enter the code.", 422)
    try:
        account = await sessions.second_step(ticket, code)
    except SecondFactorRefused:
        return await page(WRONG_CODE, 401)
    return await steps.signed_in(flow, account.user_id, SECOND_FACTOR_LOGIN_AMR)


def _options_refused(status: int, detail: str) -> Response:
    return problem(status, HTTPStatus(status).phrase, detail, headers=NO_STORE)


async def _options_form(
    request: Request, kit: PageKit, oidc: OidcService, db: DbDep, form: str, fields: frozenset[str]
) -> tuple[Flow, AuthorizationRequest, dict[str, str]] | Response:
    """The checked request and form of a passkey options post, or its problem+json refusal
    (passkeys.js reads the answer: no page, and never a redirect to the client)."""
    started = await _start(request, kit, oidc, db)
    if isinstance(started, Response) or not offered(auth_state(request).settings):
        return _options_refused(400, "No passkey sign-in for this request.")
    steps, flow = started
    try:
        values = await kit.read_form(request, form, fields)
    except PageError as exc:
        return _options_refused(exc.status, exc.message)
    return steps, flow, values


@router.post("/authorize/passkey/options", include_in_schema=False)
async def passkey_options(
    request: Request, db: DbDep, oidc: OidcServiceDep, kit: PageKitDep, passkeys: PasskeysDep
) -> Response:
    """passkeys.js on the sign-in page: options for `navigator.credentials.get()` with any
    discoverable passkey, user verification required (the passkey is the whole sign-in), the
    challenge bound to this browser and this authorization request."""
    checked = await _options_form(request, kit, oidc, db, SIGN_IN_FORM, frozenset())
    if isinstance(checked, Response):
        return checked
    steps, flow, _ = checked
    options = await passkeys.authentication_options(
        None, binding=steps.binding(flow), verify_user=True
    )
    return JSONResponse(options.model_dump(), headers=NO_STORE)


@router.post("/authorize/mfa/options", include_in_schema=False)
async def second_factor_options(
    request: Request,
    db: DbDep,
    oidc: OidcServiceDep,
    kit: PageKitDep,
    sessions: SessionServiceDep,
    passkeys: PasskeysDep,
) -> Response:
    """passkeys.js on the second-factor page: options for the passkeys of the ticket's account
    (nothing of the ticket spent), the challenge bound as on the sign-in page."""
    checked = await _options_form(
        request, kit, oidc, db, SECOND_FACTOR_FORM, frozenset({"mfa_token"})
    )
    if isinstance(checked, Response):
        return checked
    steps, flow, values = checked
    ticket = values.get("mfa_token", "")
    # An overlong ticket is refused before it is looked up.
    well_formed = bool(ticket) and len(ticket) <= MAX_TICKET_LENGTH
    user_id = await sessions.second_factors.ticket_user(ticket) if well_formed else None
    if user_id is None:
        return _options_refused(401, "The sign-in has expired: start again.")
    options = await passkeys.authentication_options(user_id, binding=steps.binding(flow))
    return JSONResponse(options.model_dump(), headers=NO_STORE)


@router.post("/authorize/passkey", response_class=HTMLResponse, include_in_schema=False)
async def passkey_sign_in(
    request: Request,
    db: DbDep,
    oidc: OidcServiceDep,
    kit: PageKitDep,
    sessions: SessionServiceDep,
    passkeys: PasskeysDep,
) -> Response:
    """The sign-in page's passkey form: a discoverable passkey's answer, with its user
    verified, signs its account in without a password. A refused answer still spends its
    challenge (committed with the page)."""
    started = await _start(request, kit, oidc, db)
    if isinstance(started, Response):
        return started
    steps, flow = started
    try:
        values = await kit.read_form(request, SIGN_IN_FORM, PASSKEY_FIELDS)
    except PageError as exc:
        return steps.sign_in_page(flow, error=exc.message, status=exc.status)
    if not offered(auth_state(request).settings):
        return steps.sign_in_page(flow, error=PASSKEY_REFUSED, status=400)
    try:
        signed = await passkeys.verify_assertion(
            read_credential(values.get("credential", "")),
            binding=steps.binding(flow),
            verify_user=True,
        )
        account = await sessions.passkey_account(signed.user_id)
    except (PasskeyRefused, Unauthorized):
        return steps.sign_in_page(flow, error=PASSKEY_REFUSED, status=401)
    except (EmailNotVerified, ServiceUnavailable) as exc:
        return steps.account_refused_page(flow, exc)
    return await steps.signed_in(flow, account.user_id, sign_in_amr(signed, after_password=False))


@router.post("/authorize/consent", response_class=HTMLResponse, include_in_schema=False)
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
