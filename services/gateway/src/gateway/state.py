"""What the gateway's lifespan builds, in one object (common.state): the hot path's `Edge` and
the merged API document, and the dependency reaching them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from common.state import state_dependency
from common.tokens import TokenVerifier
from fastapi import Depends

from gateway.breaker import CircuitBreaker
from gateway.edge import Cors, TrustedProxies
from gateway.guard import Guard
from gateway.upstream import Upstream

if TYPE_CHECKING:  # docs.py reaches the document through GatewayStateDep
    from gateway.docs import MergedDocument


@dataclass
class Edge:
    """Everything the hot path needs, built in the lifespan."""

    upstreams: dict[str, Upstream]
    verifier: TokenVerifier
    guard: Guard
    breakers: dict[str, CircuitBreaker]
    proxies: TrustedProxies
    cors: Cors
    max_body: int
    body_timeout: float = 10.0  # CLIENT_BODY_TIMEOUT: seconds per 64 KiB of request body
    uploads_per_ip: int = 4  # CLIENT_UPLOADS_PER_IP: streamed bodies at once per client IP
    uploads: dict[str, int] = field(default_factory=dict)  # client IP → streamed bodies now
    rate_policy: bytes = b""  # RateLimit-Policy of the general limit
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        general = self.guard.general
        self.rate_policy = f'"general";q={general.limit};w={general.window}'.encode()


@dataclass(frozen=True, slots=True)
class GatewayState:
    edge: Edge
    merged_document: MergedDocument


GatewayStateDep = Annotated[GatewayState, Depends(state_dependency(GatewayState))]
