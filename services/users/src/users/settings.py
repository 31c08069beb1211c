"""The users service's settings (API.md §7 plus password hashing and the bootstrap admin)."""

from __future__ import annotations

from typing import Self

from common.settings import ServiceSettings, database_is_embedded, sqlite_url
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from users.accounts.schemas import UserCreate

# ASVS 5.0 V6 / OWASP: bcrypt cost 12 or more in production; tests may go lower for speed.
PRODUCTION_MIN_BCRYPT_ROUNDS = 12


class UsersSettings(ServiceSettings):
    users_database_url: str = Field(default_factory=lambda: sqlite_url("users"))
    users_port: int = 8002
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    # Hashes computed at once, each on a worker thread (bcrypt holds a core for ~250 ms at 12).
    bcrypt_concurrency: int = Field(default=2, ge=1, le=64)
    # Callers waiting for a hash worker, per kind (logins; registrations and password changes).
    # A full queue answers 503 + Retry-After at once (API.md §11).
    bcrypt_queue_size: int = Field(default=8, ge=0, le=10_000)
    # Seconds a caller may wait for a worker before it is dropped with a 503 (below auth's 5 s
    # timeout for users, so the hash is never computed for a login auth has given up on).
    bcrypt_queue_timeout: float = Field(default=2.0, gt=0, le=30)
    # Verified access tokens remembered until expiry (0: verify every time).
    verified_token_cache: int = Field(default=10_000, ge=0)
    # How long a password reset link lives (API.md §8: 30 minutes).
    password_reset_ttl_seconds: int = Field(default=1800, ge=60, le=86_400)
    # How long an email verification link lives (API.md §8: 24 hours).
    email_verification_ttl_seconds: int = Field(default=86_400, ge=60, le=7 * 86_400)
    # Failed passwords of one account within 15 minutes that lock its password logins
    # (API.md §10; users.credentials.lockout).
    lockout_threshold: int = Field(default=10, ge=1, le=1000)
    bootstrap_admin_email: str | None = None
    bootstrap_admin_username: str | None = None
    bootstrap_admin_password: SecretStr | None = None

    @field_validator(
        "bootstrap_admin_email",
        "bootstrap_admin_username",
        "bootstrap_admin_password",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `BOOTSTRAP_ADMIN_EMAIL=` (as in .env.example and compose files) means "not set".
        return None if value == "" else value

    @model_validator(mode="after")
    def _production_cost(self) -> Self:
        if self.is_production and self.bcrypt_rounds < PRODUCTION_MIN_BCRYPT_ROUNDS:
            raise ValueError(f"BCRYPT_ROUNDS must be at least {PRODUCTION_MIN_BCRYPT_ROUNDS}")
        return self

    @model_validator(mode="after")
    def _bootstrap_admin_can_be_created(self) -> Self:
        """A bootstrap admin that could never be created is a bad setting: refused at start like
        any other, rather than logged while the service runs without its admin."""
        self.bootstrap_admin()
        return self

    def bootstrap_admin(self) -> UserCreate | None:
        """The BOOTSTRAP_ADMIN_* account to create, or None when none is configured; raises
        ValueError naming the variables when it is incomplete or the account rules refuse it."""
        values = {
            "email": self.bootstrap_admin_email,
            "username": self.bootstrap_admin_username,
            "password": (
                self.bootstrap_admin_password.get_secret_value()
                if self.bootstrap_admin_password is not None
                else None
            ),
        }
        missing = [f"BOOTSTRAP_ADMIN_{name.upper()}" for name, v in values.items() if v is None]
        if len(missing) == len(values):
            return None
        if missing:
            raise ValueError(f"the bootstrap admin needs all three settings; {missing} not set")
        try:
            return UserCreate(**values, full_name=str(values["username"]))
        except ValidationError as exc:
            problems = "; ".join(
                f"BOOTSTRAP_ADMIN_{'.'.join(map(str, e['loc'])).upper()} {e['msg']}"
                for e in exc.errors(include_input=False)
            )
            raise ValueError(f"the bootstrap admin cannot be created: {problems}") from None

    def embedded_backends(self) -> list[str]:
        backends = super().embedded_backends()
        if database_is_embedded(self.users_database_url):
            backends.append("USERS_DATABASE_URL")
        if not self.amqp_url:
            backends.append("AMQP_URL")
        return backends
