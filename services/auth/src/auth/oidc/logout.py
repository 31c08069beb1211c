"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): `GET /end-session`.

An app sends the user here with the ID token it holds (`id_token_hint`): the sign-on session the
token came from ends, with every session its codes opened (their refresh tokens stop working and
their access tokens are refused from the next request on), and the browser goes back to a
`post_logout_redirect_uri` the client registered, with its `state`. Without a hint anyone could
send a user here (a link, an image), so the user is asked first, on a page whose form carries a
CSRF token. A redirect URI that is not registered, exactly, for the client is an error page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from common.db import DbDep
from common.pages import PageError, PageKit
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from auth.clients.models import RegisteredClient
from auth.clients.repository import registered_client
from auth.keys.service import KeyRingJwks
from auth.oidc import repository
from auth.oidc.dependencies import OidcServiceDep, PageKitDep
from auth.oidc.pages import allow_form_target, form_fields, page_answers, redirect, sso_cookie
from auth.oidc.requests import redirect_to
from auth.oidc.service import OidcService
from auth.sessions.dependencies import SessionServiceDep
from auth.sessions.service import SessionService
from auth.state import auth_state

router = APIRouter(prefix="/api/v1/auth", tags=["openid connect"])

END_SESSION_PATH = "/api/v1/auth/end-session"
END_SESSION_FORM = "auth:end-session"
CARRIED = ("post_logout_redirect_uri", "state", "client_id")
MAX_VALUE_LENGTH = 4096


class LogoutRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    hint: dict[str, Any] | None
    client: RegisteredClient | None
    post_logout_redirect_uri: str | None
    state: str | None

    def carried(self) -> list[tuple[str, str]]:
        values = {
            "post_logout_redirect_uri": self.post_logout_redirect_uri,
            "state": self.state,
            "client_id": self.client.client_id if self.client else None,
        }
        return [(name, value) for name, value in values.items() if value is not None]


async def _verified_hint(request: Request, token: str) -> dict[str, Any]:
    """An ID token we signed (expired ones too: the spec allows it, and the app may hold an old
    one); raises `LogoutRefused` for anything else."""
    keys: KeyRingJwks = auth_state(request).id_token_keys
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "JWT" or not isinstance(header.get("kid"), str):
            raise LogoutRefused("The sign-out request carries a token that is not an ID token.")
        key = await keys.key_for(header["kid"])
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            issuer=auth_state(request).settings.issuer,
            leeway=auth_state(request).settings.token_leeway_seconds,  # replicas' clocks differ
            options={"verify_aud": False, "verify_exp": False, "require": ["sub", "aud"]},
        )
    except LogoutRefused:
        raise
    except Exception as exc:  # any failure to verify: the hint is not one of ours
        raise LogoutRefused("The sign-out request carries an ID token that is not valid.") from exc
    if not isinstance(claims.get("aud"), str) or not isinstance(claims.get("sub"), str):
        raise LogoutRefused("The sign-out request carries an ID token that is not valid.")
    return claims


async def _read(request: Request, db: DbDep, values: dict[str, str]) -> LogoutRequest:
    if any(len(value) > MAX_VALUE_LENGTH for value in values.values()):
        raise LogoutRefused("The sign-out request is too large.")
    hint_text = values.get("id_token_hint") or None
    hint = await _verified_hint(request, hint_text) if hint_text is not None else None
    client_id = values.get("client_id") or (hint["aud"] if hint is not None else None)
    if hint is not None and client_id != hint["aud"]:
        raise LogoutRefused("client_id does not match the ID token.")
    client = await registered_client(db, client_id) if client_id else None
    if client_id and client is None:
        raise LogoutRefused("The app asking you to sign out is not registered here.")
    target = values.get("post_logout_redirect_uri") or None
    if target is not None and (client is None or target not in client.post_logout_redirect_uris):
        raise LogoutRefused("The app asked to send you to an address it did not register.")
    return LogoutRequest(hint, client, target, values.get("state") or None)


def _single(items: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in items:
        if name in values:
            raise LogoutRefused(f"The sign-out request repeats '{name}'.")
        values[name] = value
    return values


def _signed_out(request: Request, logout: LogoutRequest, kit: PageKit) -> Response:
    if logout.post_logout_redirect_uri is not None:
        parameters = {"state": logout.state} if logout.state is not None else {}
        url = logout.post_logout_redirect_uri
        return redirect(redirect_to(url, parameters) if parameters else url, request)
    return kit.message(request, title="Signed out", message="You are signed out.", kind="success")


async def _end(oidc: OidcService, sessions: SessionService, sso_id: str) -> None:
    await oidc.end_sso(sso_id, sessions.revoker, "end_session")


@router.get("/end-session", response_class=HTMLResponse, responses=page_answers(302, 400))
async def end_session(
    request: Request,
    db: DbDep,
    oidc: OidcServiceDep,
    kit: PageKitDep,
    sessions: SessionServiceDep,
) -> Response:
    """RP-initiated logout: `id_token_hint`, `post_logout_redirect_uri` (registered for the
    client), `state`, optional `client_id`. Ends the single sign-on session and every session it
    opened, then redirects back (with `state`) or shows that you are signed out. Without an
    `id_token_hint`, the user is asked to confirm."""
    cookie = sso_cookie(auth_state(request).settings)
    try:
        logout = await _read(request, db, _single(request.query_params.multi_items()))
    except LogoutRefused as exc:
        return kit.message(request, title="Sign-out failed", message=exc.message, status=400)
    sso = await oidc.live_sso(cookie.read(request)) if cookie is not None else None
    hint = logout.hint
    if hint is None and sso is not None:
        page = kit.render(
            request,
            "oidc/sign_out.html",
            {"action": END_SESSION_PATH, "carried": logout.carried()},
            form=END_SESSION_FORM,
        )
        if logout.post_logout_redirect_uri is not None:
            allow_form_target(page, logout.post_logout_redirect_uri)
        return page
    ended_cookie = False
    if hint is not None:
        hinted_id = hint.get("sid")
        if isinstance(hinted_id, str) and len(hinted_id) <= 36:
            hinted = await repository.get_sso_session(db, hinted_id)
            if hinted is not None and hinted.user_id == hint["sub"]:
                await _end(oidc, sessions, hinted.id)
                ended_cookie = sso is not None and sso.id == hinted.id
        if sso is not None and sso.user_id == hint["sub"] and not ended_cookie:
            await _end(oidc, sessions, sso.id)
            ended_cookie = True
    response = _signed_out(request, logout, kit)
    if ended_cookie and cookie is not None:
        cookie.clear(response)
    return response


# Declared (schemathesis: POST answered 415 where the document said the path has no POST): the
# sign-out page's confirmation posts here.
@router.post(
    "/end-session",
    response_class=HTMLResponse,
    responses=page_answers(302, 400, 403, 413, 415, 422),
    openapi_extra=form_fields(
        {"csrf_token": 256, **dict.fromkeys(CARRIED, MAX_VALUE_LENGTH)}, "csrf_token"
    ),
)
async def confirm_end_session(
    request: Request,
    db: DbDep,
    oidc: OidcServiceDep,
    kit: PageKitDep,
    sessions: SessionServiceDep,
) -> Response:
    """The sign-out page's post: ends this browser's sign-on session and its sessions."""
    cookie = sso_cookie(auth_state(request).settings)
    try:
        values = await kit.read_form(request, END_SESSION_FORM, frozenset(CARRIED))
        logout = await _read(request, db, values)
    except PageError as exc:
        return kit.message(request, title="Sign-out failed", message=exc.message, status=exc.status)
    except LogoutRefused as exc:
        return kit.message(request, title="Sign-out failed", message=exc.message, status=400)
    sso = await oidc.live_sso(cookie.read(request)) if cookie is not None else None
    if sso is not None:
        await _end(oidc, sessions, sso.id)
    response = _signed_out(request, logout, kit)
    if cookie is not None:
        cookie.clear(response)
    return response
