"""Why a refresh is refused. Each is a 401 whose side effects (a revoked session) are kept: the
token endpoint answers it through `common.db.CommitThenAnswer`."""

from __future__ import annotations

from common.errors import ServiceUnavailable, Unauthorized


class RefreshRefused(Unauthorized):
    """The refresh token cannot be used; any revocation it caused is committed before the
    answer (`common.db.CommitThenAnswer`)."""

    # RFC 6749 §5.2 code for the token endpoint.
    oauth_error = "invalid_grant"

    def __init__(self, detail: str = "The refresh token is invalid, expired or revoked.") -> None:
        super().__init__(detail)


class RefreshTokenReused(RefreshRefused):
    """A rotated or revoked refresh token came back: its whole session is now revoked."""


class SessionExpired(RefreshRefused):
    pass


class AccountUnavailable(RefreshRefused):
    """The account is deactivated or gone: the session is revoked."""


class CredentialsChanged(RefreshRefused):
    """The password changed after the session's login: every session opened before the change
    is now revoked."""


class RevocationUnavailable(ServiceUnavailable):
    """Redis did not take a revocation marker (after one retry on a fresh connection): 503 with
    `Retry-After`, and the request's transaction rolls back, so nothing claims the session ended
    (see `SessionRevoker`)."""

    RETRY_AFTER_SECONDS = 2

    def __init__(self) -> None:
        super().__init__(
            "Sessions cannot be ended right now; try again shortly.",
            headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)},
        )
