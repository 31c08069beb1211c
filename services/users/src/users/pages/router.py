"""The pages the emails link to (API.md §8): choose a new password, confirm an address.

Server-rendered with `common.pages` (no script: they work with JavaScript off; strict CSP; CSRF
tokens on every form), reached through the gateway at `/account/...`. A form post calls the same
service function as the JSON route; a failure answers with its page through `PageAnswer`, so the
request's transaction is rolled back exactly as for the JSON route's error. A GET never uses a
link: mail scanners fetch links, so the verification page asks for a click (a POST).
"""

from __future__ import annotations

from pathlib import Path

from common.db import ReadDbDep
from common.errors import BadRequest, Conflict
from common.pages import PageAnswer, PageError, PageKit
from common.state import service_state
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import TypeAdapter, ValidationError

from users.accounts.schemas import NewPassword
from users.models import EmailVerificationToken, PasswordResetToken
from users.recovery.dependencies import PasswordResetsDep
from users.recovery.tokens import link_is_open
from users.state import UsersState
from users.verification.dependencies import Links, VerificationDep

TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET_PATH = "/account/static/pages.css"
RESET_FORM = "users:reset-password"
VERIFY_FORM = "users:verify-email"
RESET_FIELDS = frozenset({"token", "new_password", "confirm_password"})
VERIFY_FIELDS = frozenset({"token"})
LINK_DEAD = (
    "This link is invalid, used or expired. Ask for a new one: “forgot my password” on the "
    "sign-in page sends a new reset link; signing in lets you ask for a new verification link."
)
_new_password: TypeAdapter[str] = TypeAdapter(NewPassword)

router = APIRouter(prefix="/account", include_in_schema=False)


def get_kit(request: Request) -> PageKit:
    return service_state(request.app, UsersState).pages


def dead_link(request: Request) -> HTMLResponse:
    return get_kit(request).message(
        request, title="This link does not work", message=LINK_DEAD, status=400
    )


async def read(request: Request, form: str, fields: frozenset[str]) -> dict[str, str]:
    kit = get_kit(request)
    try:
        return await kit.read_form(request, form, fields)
    except PageError as exc:
        raise PageAnswer(
            kit.message(request, title="Not done", message=exc.message, status=exc.status)
        ) from None


def password_problem(password: str) -> str | None:
    """The policy's objection to `password` (the JSON route's 422 message), or None."""
    try:
        _new_password.validate_python(password)
    except ValidationError as exc:
        message = str(exc.errors(include_input=False)[0]["msg"])
        return message.removeprefix("Value error, ")
    return None


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(
    request: Request, db: ReadDbDep, links: Links, token: str = ""
) -> HTMLResponse:
    if not await link_is_open(db, PasswordResetToken, token, links.clock()):
        return dead_link(request)
    context = {"token": token, "errors": {}}
    return get_kit(request).render(request, "reset_password.html", context, form=RESET_FORM)


@router.post("/reset-password", response_class=HTMLResponse)
async def reset_password_form(request: Request, resets: PasswordResetsDep) -> HTMLResponse:
    values = await read(request, RESET_FORM, RESET_FIELDS)
    token = values.get("token", "")
    password = values.get("new_password", "")
    errors: dict[str, str] = {}
    problem = password_problem(password)
    if problem is not None:
        errors["new_password"] = problem
    elif values.get("confirm_password", "") != password:
        errors["confirm_password"] = "The two passwords are not the same."
    kit = get_kit(request)
    if errors:
        context = {"token": token, "errors": errors}
        raise PageAnswer(
            kit.render(request, "reset_password.html", context, status=422, form=RESET_FORM)
        )
    try:
        await resets.reset_password(token, password)
    except BadRequest:
        raise PageAnswer(dead_link(request)) from None
    return kit.message(
        request,
        title="Your password was changed",
        message="Every session of your account was signed out: sign in with the new password.",
        kind="success",
    )


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(
    request: Request, db: ReadDbDep, links: Links, token: str = ""
) -> HTMLResponse:
    if not await link_is_open(db, EmailVerificationToken, token, links.clock()):
        return dead_link(request)
    return get_kit(request).render(request, "verify_email.html", {"token": token}, form=VERIFY_FORM)


@router.post("/verify-email", response_class=HTMLResponse)
async def verify_email_form(request: Request, verification: VerificationDep) -> HTMLResponse:
    values = await read(request, VERIFY_FORM, VERIFY_FIELDS)
    kit = get_kit(request)
    try:
        await verification.verify_email(values.get("token", ""))
    except BadRequest:
        raise PageAnswer(dead_link(request)) from None
    except Conflict:
        raise PageAnswer(
            kit.message(
                request,
                title="That address is taken",
                message="Another account uses this address now, so it cannot become yours. "
                "Your account keeps its current address.",
                status=409,
            )
        ) from None
    return kit.message(
        request,
        title="Your email address is confirmed",
        message="Thank you: this address is now confirmed for your account.",
        kind="success",
    )
