"""Why a second-factor request is refused."""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import Conflict, ServiceUnavailable, Unauthorized, ValidationFailed

MFA_REQUIRED_TYPE = "https://gatehouse.dev/problems/mfa-required"


class MfaRequired(Unauthorized):
    """The right password of an account with MFA on: no tokens yet, a ticket for the second
    step. The ticket's row must be committed with the answer: the route raises it through
    `common.db.CommitThenAnswer`."""

    type_ = MFA_REQUIRED_TYPE

    def __init__(self, mfa_token: str, methods: Sequence[str]) -> None:
        super().__init__("A second factor is required: send a code to /api/v1/auth/login/mfa.")
        self.extra = {"mfa_token": mfa_token, "methods": list(methods)}


class SecondFactorRefused(Unauthorized):
    """A wrong code, or a ticket that is unknown, used, expired or voided. The same answer for
    all; the attempt it spent must be committed (the route raises it through
    `common.db.CommitThenAnswer`)."""

    def __init__(self) -> None:
        super().__init__("The code is wrong, or the mfa_token is invalid or expired.")


class WrongEnrolmentCode(ValidationFailed):
    def __init__(self) -> None:
        super().__init__(
            [{"field": "code", "message": "The code does not match the authenticator."}],
            "The code does not match; check the app's clock and try the current code.",
        )


class NoPendingEnrolment(Conflict):
    def __init__(self) -> None:
        super().__init__("No TOTP enrolment is waiting: start one with POST /api/v1/auth/mfa/totp.")


class MfaNotEnabled(Conflict):
    def __init__(self) -> None:
        super().__init__("MFA is not on for this account.")


class SecondFactorUnreadable(ServiceUnavailable):
    """A stored TOTP secret does not open with AUTH_MFA_ENCRYPTION_KEY (the key was changed
    without re-enrolment, or the row was altered): an operator's problem, logged as such; the
    client is told the check cannot be made now, and a recovery code still works."""

    def __init__(self) -> None:
        super().__init__("The second factor cannot be checked right now; a recovery code can.")
