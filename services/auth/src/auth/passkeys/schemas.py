"""Request and response bodies of the passkey endpoints (API.md §13, passkeys)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PASSKEY_NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"


class PasskeyOptions(BaseModel):
    """`navigator.credentials.create({publicKey})`'s argument, in the WebAuthn JSON form
    (`PublicKeyCredential.parseCreationOptionsFromJSON`); its challenge works once, 5 minutes."""

    publicKey: dict[str, Any]  # noqa: N815 - the WebAuthn member's name


class PasskeyRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: dict[str, Any] = Field(
        description="The `PublicKeyCredential` the browser created, as `toJSON()` gives it."
    )
    name: str = Field(default="Passkey", min_length=1, max_length=64, pattern=PASSKEY_NAME_PATTERN)


class PasskeyRead(BaseModel):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    backed_up: bool
