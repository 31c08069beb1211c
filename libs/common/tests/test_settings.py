from __future__ import annotations

from typing import Any

import pytest
from common.settings import Environment, ServiceSettings
from pydantic import SecretStr, ValidationError


class ExampleSettings(ServiceSettings):
    database_url: str = "sqlite+aiosqlite:///var/x.db"

    def embedded_backends(self) -> list[str]:
        return ["DATABASE_URL"] if self.database_url.startswith("sqlite") else []


REAL: dict[str, Any] = {
    "environment": Environment.PRODUCTION,
    "internal_client_secret": SecretStr("x" * 32),
    "database_url": "postgresql+asyncpg://db/x",
    "cors_origins": ["https://app.example.com"],
}


def test_development_defaults_start() -> None:
    settings = ExampleSettings()
    assert not settings.is_production
    assert settings.audience == "gatehouse-api"


def test_production_with_real_values_starts() -> None:
    assert ExampleSettings(**REAL).is_production


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("internal_client_secret", SecretStr("dev-only-internal-client-secret"), "INTERNAL"),
        ("internal_client_secret", SecretStr("short"), "INTERNAL"),
        ("cors_origins", ["*"], "CORS_ORIGINS"),
        ("database_url", "sqlite+aiosqlite:///var/x.db", "DATABASE_URL"),
    ],
)
def test_production_refuses_unsafe_values(field: str, value: object, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        ExampleSettings(**{**REAL, field: value})


def test_cors_origins_read_as_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert ExampleSettings().cors_origins == ["https://a.example", "https://b.example"]


def test_secrets_never_appear_in_repr() -> None:
    assert "x" * 32 not in repr(ExampleSettings(**REAL))


class SettingsWithASecret(ExampleSettings):
    # The last field: pydantic's abbreviated input shows its start and its end.
    api_secret: SecretStr = SecretStr("")


def test_a_refused_setting_never_echoes_the_secrets_it_was_given() -> None:
    with pytest.raises(ValidationError) as refused:
        SettingsWithASecret(**{**REAL, "cors_origins": ["*"]}, api_secret="a-real-secret-0123")
    assert "0123" not in str(refused.value)
