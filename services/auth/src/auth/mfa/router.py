"""Second-factor endpoints (API.md §9): TOTP enrolment and removal, recovery codes, and the
second step of a login."""

from __future__ import annotations

from typing import Any

from common.db import CommitThenAnswer
from common.errors import problem_responses
from common.forms import JSON_TYPE
from common.security import CurrentPrincipal, RecentPrincipal
from fastapi import APIRouter, Response, status

from auth.mfa.dependencies import MfaLoginDep, SecondFactorsDep
from auth.mfa.exceptions import SecondFactorRefused
from auth.mfa.schemas import MfaLogin, MfaStatus, RecoveryCodes, TotpConfirmation, TotpEnrolment
from auth.sessions.dependencies import SessionServiceDep
from auth.sessions.schemas import TokenPair

router = APIRouter(prefix="/api/v1/auth", tags=["mfa"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The step-up routes answer the RFC 9470 challenge (401) to an old login.
STEP_UP = problem_responses(401, 503)
# Read by `mfa_login_body` (common.forms), not by FastAPI, so the document declares it.
MFA_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {JSON_TYPE: {"schema": MfaLogin.model_json_schema()}},
        "required": True,
    }
}


@router.get("/mfa", responses=problem_responses(401))
async def mfa_status(principal: CurrentPrincipal, factors: SecondFactorsDep) -> MfaStatus:
    """Whether the caller's account has TOTP on, and how many unused recovery codes it has."""
    return await factors.status(str(principal.user_id))


@router.post("/mfa/totp", responses=STEP_UP)
async def start_totp(
    principal: RecentPrincipal, factors: SecondFactorsDep, response: Response
) -> TotpEnrolment:
    """Start (or restart) a TOTP enrolment: a new secret and its `otpauth://` URI for an
    authenticator app. Nothing changes until it is confirmed; starting again replaces the
    secret waiting for confirmation. Needs a recent login."""
    response.headers.update(NO_STORE)
    return await factors.start_totp(str(principal.user_id))


@router.post("/mfa/totp/confirm", responses=problem_responses(401, 409, 422, 503))
async def confirm_totp(
    body: TotpConfirmation,
    principal: CurrentPrincipal,
    factors: SecondFactorsDep,
    response: Response,
) -> RecoveryCodes:
    """Confirm the enrolment with the code the app shows: MFA is on, and the answer holds ten
    recovery codes, shown this once (any older set is void). A wrong code is a 422."""
    response.headers.update(NO_STORE)
    codes = await factors.confirm_totp(str(principal.user_id), body.code)
    return RecoveryCodes(recovery_codes=codes)


@router.delete("/mfa/totp", status_code=status.HTTP_204_NO_CONTENT, responses=STEP_UP)
async def disable_totp(principal: RecentPrincipal, factors: SecondFactorsDep) -> Response:
    """Turn MFA off: the TOTP secret and every recovery code are void. Needs a recent login."""
    await factors.disable_totp(str(principal.user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/mfa/recovery-codes", responses=problem_responses(401, 409, 503))
async def regenerate_recovery_codes(
    principal: RecentPrincipal, factors: SecondFactorsDep, response: Response
) -> RecoveryCodes:
    """A new set of ten recovery codes, shown this once; the old set is void. Needs MFA on and
    a recent login."""
    response.headers.update(NO_STORE)
    codes = await factors.regenerate_recovery_codes(str(principal.user_id))
    return RecoveryCodes(recovery_codes=codes)


@router.post(
    "/login/mfa",
    responses=problem_responses(401, 413, 415, 422, 503),
    openapi_extra=MFA_LOGIN_BODY,
)
async def login_second_step(
    body: MfaLoginDep, sessions: SessionServiceDep, response: Response
) -> TokenPair:
    """The second step of a login with MFA on: the `mfa_token` of the first step's
    `/mfa-required` answer and a TOTP code or an unused recovery code. Each code works once;
    a wrong one is a 401, and the fifth wrong one voids the `mfa_token`."""
    response.headers.update(NO_STORE)
    try:
        return await sessions.login_second_step(body.mfa_token, body.code)
    except SecondFactorRefused as refused:
        raise CommitThenAnswer(refused) from None  # the attempt it spent must count
