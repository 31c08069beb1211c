"""Email verification (API.md §8): use a link (public), ask for a new one (bearer)."""

from __future__ import annotations

from common.errors import problem_responses
from fastapi import APIRouter, Response, status

from users.dependencies import Me
from users.verification.dependencies import VerificationDep
from users.verification.schemas import Accepted, VerifyEmail

router = APIRouter(prefix="/api/v1/users", tags=["email verification"])

RESENT = "If this account has an address to confirm, a new link is on its way to it."


@router.post(
    "/email/verify",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 409),
)
async def verify_email(body: VerifyEmail, verification: VerificationDep) -> Response:
    """Use the token of a verification link: the address it was sent to counts as verified; for
    a pending change it becomes the account's `email` (409 if another account has it now)."""
    await verification.verify_email(body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/me/email/verification",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=problem_responses(401),
)
async def resend_verification(me: Me, verification: VerificationDep) -> Accepted:
    """Send the verification link again: to the pending address when a change waits, else to
    an unverified `email` (nothing is sent when there is nothing to confirm). Older links die."""
    await verification.resend(me)
    return Accepted(detail=RESENT)
