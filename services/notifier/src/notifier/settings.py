"""The notifier's settings (API.md §7): its database, port, SMTP and embedded mail folder."""

from __future__ import annotations

from pathlib import Path

from common.settings import ServiceSettings, database_is_embedded, sqlite_url, var_dir
from pydantic import Field, SecretStr


class NotifierSettings(ServiceSettings):
    notifier_database_url: str = Field(default_factory=lambda: sqlite_url("notifier"))
    notifier_port: int = 8003
    # No SMTP_HOST: mail is written as .eml files under `mail_dir` (embedded mode).
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "Gatehouse <no-reply@gatehouse.local>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # Persistent SMTP connections kept open and reused between emails.
    smtp_pool_size: int = Field(default=8, ge=1, le=64)
    mail_dir: Path = Field(default_factory=lambda: var_dir() / "mail")
    # Where the links in emails lead (API.md §12): `{ACCOUNT_URL}/reset-password?token=...`.
    # Unset: `{ISSUER}/account`, the pages Gatehouse serves itself.
    account_url: str | None = None
    # Messages handled at once (RabbitMQ prefetch). Their delivery records are written in shared
    # transactions (group commit), so more in flight means bigger batches: 64 measured ~1.2x the
    # events/s of 32 in `make bench`.
    notifier_concurrency: int = Field(default=64, ge=1, le=1000)

    @property
    def account_link_base(self) -> str:
        return (self.account_url or f"{self.issuer.rstrip('/')}/account").rstrip("/")

    def secrets(self) -> dict[str, SecretStr | None]:
        secrets = super().secrets()
        if self.smtp_username:
            secrets["SMTP_PASSWORD"] = self.smtp_password
        return secrets

    def embedded_backends(self) -> list[str]:
        backends = super().embedded_backends()
        if database_is_embedded(self.notifier_database_url):
            backends.append("NOTIFIER_DATABASE_URL")
        if not self.amqp_url:
            backends.append("AMQP_URL")
        if not self.smtp_host:
            backends.append("SMTP_HOST")
        return backends
