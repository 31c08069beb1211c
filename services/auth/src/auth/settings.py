"""The auth service's settings (API.md §7 plus the token and key lifetimes operators may tune)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Self

from common.revocation import MAX_ACCESS_TOKEN_SECONDS
from common.settings import DEV_SECRET_PREFIX, ServiceSettings, database_is_embedded, sqlite_url
from pydantic import Field, SecretStr, model_validator

DAY = 24 * 3600


class AuthSettings(ServiceSettings):
    auth_database_url: str = Field(default_factory=lambda: sqlite_url("auth"))
    auth_port: int = 8001
    # urlsafe base64 of 32 random bytes: the AES-256-GCM key wrapping the signing keys at rest.
    auth_key_encryption_key: SecretStr = SecretStr(DEV_SECRET_PREFIX + "key-encryption-key")
    # Access tokens: 15 minutes by default, never more than 30 (API.md §2).
    access_token_ttl: int = Field(default=900, ge=60, le=MAX_ACCESS_TOKEN_SECONDS)
    # A session (every refresh token descended from one login) ends this long after the login.
    refresh_token_ttl: int = Field(default=7 * DAY, ge=300, le=90 * DAY)
    # ... and earlier when its current refresh token goes unused this long.
    refresh_idle_timeout: int = Field(default=DAY, ge=300, le=90 * DAY)
    rsa_key_bits: int = Field(default=3072, ge=2048, le=8192)
    # How long a key signs before the schedule rotates it.
    key_rotation_interval: int = Field(default=30 * DAY, ge=3600)
    # How often every replica re-reads the keys from the database (and the scheduler runs).
    key_refresh_seconds: int = Field(default=60, ge=1, le=3600)
    key_rotation_enabled: bool = True
    # urlsafe base64 of 32 random bytes: the AES-256-GCM key sealing TOTP secrets at rest, and
    # (through HKDF) the HMAC key of recovery codes. Its own key, not the KEK: rotating one does
    # not touch what the other protects.
    auth_mfa_encryption_key: SecretStr = SecretStr(DEV_SECRET_PREFIX + "mfa-encryption-key")
    # The issuer an authenticator app shows beside the account (API.md §12).
    mfa_issuer: str = Field(default="Gatehouse", min_length=1, max_length=64, pattern=r"^[^:]+$")
    # Passkeys (WebAuthn): the relying party id and the origin the browser signs for. Default:
    # the host and origin of ISSUER, where the hosted pages are served.
    webauthn_rp_id: str | None = Field(default=None, min_length=1, max_length=253)
    webauthn_origin: str | None = Field(default=None, pattern=r"^https?://[^/]+$")
    # Tokens auth verified (introspection, its own routes, service tokens), remembered until they
    # expire (0: verify every time); an introspected token's session and user are still read
    # from the database at every introspection.
    verified_token_cache: int = Field(default=10_000, ge=0)
    # How often every replica checks that Redis still holds the revocation markers (one EXISTS of
    # the epoch key) and restores them from the database when it lost them.
    revocation_check_seconds: float = Field(default=1.0, gt=0, le=60)
    # OpenID Connect (API.md §13): how long a browser's single sign-on at Gatehouse lasts (its
    # cookie and the record behind it); an app may ask for a fresher sign-in with max_age.
    sso_session_ttl: int = Field(default=DAY, ge=300, le=30 * DAY)
    # Where the sign-in page's "forgot password" leads: {ACCOUNT_URL}/reset-password (API.md §8);
    # unset, {ISSUER}/account.
    account_url: str | None = None
    # Refuse password logins of accounts whose address is not verified (403, API.md §8).
    require_verified_email: bool = False

    @model_validator(mode="after")
    def _check_key_encryption_key(self) -> Self:
        self.key_encryption_key_bytes()  # raises ValueError on a malformed key
        self.mfa_encryption_key_bytes()
        if self.refresh_idle_timeout > self.refresh_token_ttl:
            raise ValueError("REFRESH_IDLE_TIMEOUT must not exceed REFRESH_TOKEN_TTL")
        return self

    def key_encryption_key_bytes(self) -> bytes:
        """The 32-byte KEK. The development placeholder is stretched with SHA-256 so a laptop
        runs without configuration; production refuses the placeholder (see `secrets`)."""
        return _aes_key("AUTH_KEY_ENCRYPTION_KEY", self.auth_key_encryption_key)

    def mfa_encryption_key_bytes(self) -> bytes:
        """The 32-byte key of the second factors' secrets, read as the KEK is."""
        return _aes_key("AUTH_MFA_ENCRYPTION_KEY", self.auth_mfa_encryption_key)

    @property
    def account_pages_url(self) -> str:
        return (self.account_url or f"{self.issuer.rstrip('/')}/account").rstrip("/")

    @property
    def max_access_token_lifetime(self) -> int:
        """How long a token signed now may still be presented (its lifetime plus the leeway)."""
        return self.access_token_ttl + self.token_leeway_seconds

    def secrets(self) -> dict[str, SecretStr | None]:
        secrets = super().secrets()
        secrets["AUTH_KEY_ENCRYPTION_KEY"] = self.auth_key_encryption_key
        secrets["AUTH_MFA_ENCRYPTION_KEY"] = self.auth_mfa_encryption_key
        return secrets

    def embedded_backends(self) -> list[str]:
        backends = super().embedded_backends()
        if database_is_embedded(self.auth_database_url):
            backends.append("AUTH_DATABASE_URL")
        if not self.redis_url:
            backends.append("REDIS_URL")
        if not self.amqp_url:
            backends.append("AMQP_URL")
        return backends


def _aes_key(name: str, secret: SecretStr) -> bytes:
    value = secret.get_secret_value()
    if value.startswith(DEV_SECRET_PREFIX):
        return hashlib.sha256(value.encode()).digest()
    try:
        key = base64.urlsafe_b64decode(value.encode() + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} must be urlsafe base64") from exc
    if len(key) != 32:
        raise ValueError(f"{name} must decode to exactly 32 bytes")
    return key
