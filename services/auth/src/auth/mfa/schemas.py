"""Request and response bodies of the second-factor endpoints (API.md §9)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# A TOTP code: six ASCII digits (RFC 6238 as authenticator apps use it).
TOTP_CODE_PATTERN = r"^[0-9]{6}$"
# At the second step, a TOTP code or a recovery code (`xxxx-xxxx-xxxx`, hyphens optional).
SECOND_FACTOR_CODE_PATTERN = r"^([0-9]{6}|[A-Za-z0-9]{4}-?[A-Za-z0-9]{4}-?[A-Za-z0-9]{4})$"
# `<user id>.<43 random characters>`; anything longer is not one of ours.
MAX_MFA_TOKEN_LENGTH = 128
SECOND_FACTOR_METHODS = ("totp", "recovery_code")


class MfaStatus(BaseModel):
    totp: bool
    recovery_codes_left: int


class TotpEnrolment(BaseModel):
    """Shown once, at enrolment: the secret (base32) and the `otpauth://` URI an authenticator
    app reads (typed in, or from the QR code of it, `qr_svg`)."""

    secret: str
    otpauth_uri: str
    qr_svg: str = Field(description="The QR code of `otpauth_uri`: an SVG `data:` URI for `<img>`.")


class TotpConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=TOTP_CODE_PATTERN, description="The code the app shows now.")


class RecoveryCodes(BaseModel):
    """Ten codes, shown this once; each works once in place of a TOTP code."""

    recovery_codes: list[str]


class MfaLogin(BaseModel):
    """The second step of a login: the `mfa_token` the first step answered, and a code."""

    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(min_length=1, max_length=MAX_MFA_TOKEN_LENGTH)
    code: str = Field(
        pattern=SECOND_FACTOR_CODE_PATTERN,
        description="A TOTP code (6 digits) or an unused recovery code.",
    )


SecondFactorMethod = Literal["totp", "recovery_code"]
