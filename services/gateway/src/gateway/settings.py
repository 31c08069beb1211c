"""The gateway's settings (API.md §5, §7)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Self

from common.settings import ServiceSettings, _split_csv
from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(value: str) -> tuple[int, int]:
    """`100/second` → (100, 1): requests allowed per window of that many seconds."""
    match = RATE.match(value)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"{value!r} is not a rate like '100/second' or '5/minute'")
    return int(match.group(1)), WINDOWS[match.group(2)]


class GatewaySettings(ServiceSettings):
    gateway_port: int = 8000
    gateway_rate_limit: str = "100/second"
    gateway_login_rate_limit: str = "5/minute"
    # Per client IP alone on the login routes (API.md §11), beside the IP + account limit.
    gateway_login_ip_rate_limit: str = "30/minute"
    # Reset link requests per client IP + the submitted address (API.md §11).
    gateway_recovery_rate_limit: str = "5/hour"
    gateway_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024**3)
    upstream_connect_timeout: float = Field(default=2.0, gt=0, le=60)
    upstream_read_timeout: float = Field(default=30.0, gt=0, le=600)
    upstream_pool_size: int = Field(default=256, ge=1, le=10_000)
    # A body must arrive at this pace: up to 64 KiB whole within it (else 408) before any
    # upstream connection is taken; a larger, streamed body gets it again per 64 KiB.
    client_body_timeout: float = Field(default=10.0, gt=0, le=600)
    # Streamed bodies (over 64 KiB) one client IP may be sending at once (else 429): each holds
    # an upstream connection while it arrives.
    client_uploads_per_ip: int = Field(default=4, ge=1, le=10_000)
    # Consecutive connection failures or timeouts that open an upstream's circuit, and how long
    # it stays open before one probe request is let through.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_open_seconds: float = Field(default=10.0, gt=0)
    # Verified tokens remembered (until their expiry) so a repeat costs no RSA verification.
    verified_token_cache: int = Field(default=10_000, ge=0)

    _proxies_csv = field_validator("gateway_trusted_proxies", mode="before")(_split_csv)

    @field_validator("gateway_trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # raises ValueError on a bad entry
        return value

    @model_validator(mode="after")
    def _rates(self) -> Self:
        parse_rate(self.gateway_rate_limit)
        parse_rate(self.gateway_login_rate_limit)
        parse_rate(self.gateway_login_ip_rate_limit)
        parse_rate(self.gateway_recovery_rate_limit)
        return self

    @property
    def rate(self) -> tuple[int, int]:
        return parse_rate(self.gateway_rate_limit)

    @property
    def login_rate(self) -> tuple[int, int]:
        return parse_rate(self.gateway_login_rate_limit)

    @property
    def login_ip_rate(self) -> tuple[int, int]:
        return parse_rate(self.gateway_login_ip_rate_limit)

    @property
    def recovery_rate(self) -> tuple[int, int]:
        return parse_rate(self.gateway_recovery_rate_limit)

    def embedded_backends(self) -> list[str]:
        backends = super().embedded_backends()
        if not self.redis_url:
            backends.append("REDIS_URL")
        return backends
