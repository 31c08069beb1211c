"""Settings shared by every service.

Every setting has a type and a development default that is safe on a laptop;
`ENVIRONMENT=production` refuses the defaults that are only safe there (placeholder secrets,
wildcard CORS, embedded backends). Services subclass `ServiceSettings` and add their own fields
and checks.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.logs import LogFormat

# Secrets whose value in the repository is only a development placeholder.
DEV_SECRET_PREFIX = "dev-only-"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def var_dir() -> Path:
    """Where embedded mode keeps its SQLite files and mail (`var/` under the working directory)."""
    return Path.cwd() / "var"


def sqlite_url(name: str) -> str:
    return f"sqlite+aiosqlite:///{var_dir() / f'{name}.db'}"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ServiceSettings(BaseSettings):
    """The base every service's settings class extends."""

    # Errors never echo the input: a settings error would otherwise print every environment value
    # it was given, secrets included, in the traceback the service dies with.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    # `json` (a JSON object a line, for log collectors) or `console` (readable lines, coloured on a
    # terminal). Unset: console in embedded mode (`make run` with nothing configured), else json.
    log_format: LogFormat | None = None
    host: str = "127.0.0.1"
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "gatehouse-api"
    auth_url: str = "http://127.0.0.1:8001"
    users_url: str = "http://127.0.0.1:8002"
    migrate_on_start: bool = True
    redis_url: str | None = None
    amqp_url: str | None = None
    # Secret that internal callers present to auth's token endpoint (client_credentials).
    internal_client_secret: SecretStr = SecretStr(DEV_SECRET_PREFIX + "internal-client-secret")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:3000"]
    )
    # Seconds a JWKS fetch is trusted, and the least time between two refetches for unknown kids.
    jwks_cache_seconds: int = Field(default=300, ge=1)
    jwks_refetch_cooldown_seconds: float = Field(default=10.0, ge=0)
    token_leeway_seconds: int = Field(default=30, ge=0, le=120)
    # RFC 9470 step-up: the oldest login (`auth_time`) a sensitive operation accepts, in seconds.
    step_up_max_age: int = Field(default=300, ge=1)
    # When true, the `users:*` permissions count only in tokens whose `amr` holds a second factor.
    admin_requires_mfa: bool = False
    # Connections to the service's database: the pool keeps up to DATABASE_POOL_SIZE open once
    # opened, and opens up to DATABASE_MAX_OVERFLOW more, each closed as soon as it is returned
    # (under load an overflow connection is opened for a share of requests: keep it 0 in
    # production; the test suites use 5 + 15 so that many of them can share one server).
    database_pool_size: int = Field(default=20, ge=1, le=500)
    database_max_overflow: int = Field(default=0, ge=0, le=500)
    # OTLP/HTTP collector (e.g. http://otel-collector:4318); unset: no tracing, at no cost.
    otel_exporter_otlp_endpoint: str | None = None

    _cors_csv = field_validator("cors_origins", mode="before")(_split_csv)

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def jwks_url(self) -> str:
        return self.auth_url.rstrip("/") + "/.well-known/jwks.json"

    def secrets(self) -> dict[str, SecretStr | None]:
        """The secrets production must not run with as placeholders. Subclasses extend it."""
        return {"INTERNAL_CLIENT_SECRET": self.internal_client_secret}

    def embedded_backends(self) -> list[str]:
        """Names of the backends running embedded. Subclasses extend it."""
        return []

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if not self.is_production:
            return self
        problems: list[str] = []
        for name, secret in self.secrets().items():
            value = secret.get_secret_value() if secret is not None else ""
            if not value or value.startswith(DEV_SECRET_PREFIX) or len(value) < 16:
                problems.append(f"{name} must be set to a real secret (16+ characters)")
        if any(origin.strip() == "*" for origin in self.cors_origins):
            problems.append("CORS_ORIGINS must not contain '*'")
        problems.extend(
            f"{backend} must point at real infrastructure" for backend in self.embedded_backends()
        )
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self


def database_is_embedded(url: str) -> bool:
    return url.startswith("sqlite")
