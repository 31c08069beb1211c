"""Forgot / reset password (API.md §8): public routes, no bearer token."""

from __future__ import annotations

from common.errors import problem_responses
from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from users.recovery.dependencies import Links, PasswordResetsDep
from users.recovery.schemas import ForgotPassword, ResetPassword
from users.recovery.service import ResetLinks

router = APIRouter(prefix="/api/v1/users/password", tags=["password recovery"])

SENT = "If an active account has this address, a link to choose a new password is on its way."


class Accepted(BaseModel):
    detail: str


async def request_link(links: ResetLinks, email: str) -> None:
    """Run after the answer is sent (a coroutine, so on the event loop, not a thread)."""
    links.request(email)


@router.post("/forgot", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def forgot_password(body: ForgotPassword, links: Links) -> Response:
    """Email a reset link to the address, if an active account has it. The answer is the same,
    and comes as fast, either way: the account is looked up once it has been sent."""
    return JSONResponse(
        Accepted(detail=SENT).model_dump(),
        status_code=status.HTTP_202_ACCEPTED,
        background=BackgroundTask(request_link, links, body.email),
    )


@router.post("/reset", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(400))
async def reset_password(body: ResetPassword, resets: PasswordResetsDep) -> Response:
    """Choose a new password with the token of a reset link: the link is used up, every other
    open link dies, every session of the account ends and the address counts as verified."""
    await resets.reset_password(body.token, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
