"""The users service's settings (API.md §7 plus password hashing and the bootstrap admin)."""

from __future__ import annotations

from typing import Self

from common.settings import ServiceSettings, database_is_embedded, sqlite_url
from pydantic import Field, SecretStr, model_validator

# ASVS 5.0 V6 / OWASP: bcrypt cost 12 or more in production; tests may go lower for speed.
PRODUCTION_MIN_BCRYPT_ROUNDS = 12


class UsersSettings(ServiceSettings):
    users_database_url: str = Field(default_factory=lambda: sqlite_url("users"))
    users_port: int = 8002
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    # Hashes computed at once, each on a worker thread (bcrypt holds a core for ~250 ms at 12).
    bcrypt_concurrency: int = Field(default=2, ge=1, le=64)
    # Verified access tokens remembered until expiry (0: verify every time).
    verified_token_cache: int = Field(default=10_000, ge=0)
    bootstrap_admin_email: str | None = None
    bootstrap_admin_username: str | None = None
    bootstrap_admin_password: SecretStr | None = None

    @model_validator(mode="after")
    def _production_cost(self) -> Self:
        if self.is_production and self.bcrypt_rounds < PRODUCTION_MIN_BCRYPT_ROUNDS:
            raise ValueError(f"BCRYPT_ROUNDS must be at least {PRODUCTION_MIN_BCRYPT_ROUNDS}")
        return self

    def embedded_backends(self) -> list[str]:
        backends = super().embedded_backends()
        if database_is_embedded(self.users_database_url):
            backends.append("USERS_DATABASE_URL")
        if not self.amqp_url:
            backends.append("AMQP_URL")
        return backends
