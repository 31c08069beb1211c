"""Why a passkey request is refused."""

from __future__ import annotations

from common.errors import Conflict, NotFound, ValidationFailed


class PasskeyRefused(ValidationFailed):
    """The browser's answer does not verify (or its challenge is not ours any more): 422 naming
    `credential`, and nothing is stored."""

    def __init__(self, detail: str) -> None:
        super().__init__([{"field": "credential", "message": detail}], detail)


class PasskeyAlreadyRegistered(Conflict):
    def __init__(self) -> None:
        super().__init__("This passkey is registered already.")


class PasskeyNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such passkey.")
