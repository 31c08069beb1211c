"""The gateway: the only public entry (API.md §1, §5)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from common.app import create_service_app
from common.embedded import Embedded
from common.redis import make_redis
from common.serve import answer_directly
from common.state import drop_state, keep_state, runtime_of
from common.tokens import JwksCache, TokenVerifier, http_jwks_fetcher
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

from gateway.breaker import CircuitBreaker
from gateway.docs import MergedDocument
from gateway.docs import router as docs_router
from gateway.edge import Cors, TrustedProxies
from gateway.guard import Guard, Limit
from gateway.proxy import Edge, Gateway
from gateway.redis_pipe import PipelinedRedis
from gateway.settings import GatewaySettings
from gateway.state import GatewayState
from gateway.upstream import Upstream

logger = logging.getLogger("gatehouse.gateway")

SERVICE_NAME = "gateway"
# Under uvicorn's 5 s keep-alive, so the pool never picks a socket the upstream is closing.
KEEPALIVE_SECONDS = 3.0
# The JWKS and OpenAPI document fetches give up after this.
OUTBOUND_TIMEOUT = 5.0
# A Redis answer later than this fails the request over to the fallback rules (guard.py).
REDIS_TIMEOUT = 1.0


def create_app(
    settings: GatewaySettings | None = None,
    *,
    embedded: Embedded | None = None,
    jwks: JwksCache | None = None,
) -> FastAPI:
    """`jwks` replaces auth's JWKS endpoint (tests)."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = make_redis(settings.redis_url, embedded.redis if embedded else None)
        # The hot path's one Redis call goes over a pipelined connection of its own when Redis
        # is a plain TCP server; `redis` serves readiness (and the script, otherwise).
        url = settings.redis_url or ""
        pipe = PipelinedRedis(url, timeout=REDIS_TIMEOUT) if url.startswith("redis://") else None
        # httpx for the gateway's own calls, off the hot path: auth's JWKS and the services'
        # OpenAPI documents. Proxied requests go over `pools`.
        http = httpx.AsyncClient(
            timeout=OUTBOUND_TIMEOUT, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
        )
        keys = jwks or JwksCache(
            http_jwks_fetcher(settings.jwks_url, http),
            max_age=settings.jwks_cache_seconds,
            refetch_cooldown=settings.jwks_refetch_cooldown_seconds,
        )
        verifier = TokenVerifier.for_audience(
            keys, settings, settings.audience, cache_size=settings.verified_token_cache
        )
        upstreams = {
            "auth": settings.auth_url.rstrip("/"),
            "users": settings.users_url.rstrip("/"),
        }
        pools = {
            name: Upstream(
                url,
                limit=settings.upstream_pool_size,
                keepalive=KEEPALIVE_SECONDS,
                connect_timeout=settings.upstream_connect_timeout,
                read_timeout=settings.upstream_read_timeout,
            )
            for name, url in upstreams.items()
        }
        breakers = {
            name: CircuitBreaker(
                name,
                settings.breaker_failures,
                settings.breaker_open_seconds,
                probe=pool.healthy,
            )
            for name, pool in pools.items()
        }
        general, window = settings.rate
        login, login_window = settings.login_rate
        login_ip, login_ip_window = settings.login_ip_rate
        recovery, recovery_window = settings.recovery_rate
        edge = Edge(
            upstreams=pools,
            verifier=verifier,
            guard=Guard(
                redis,
                Limit("general", general, window),
                Limit("login", login, login_window),
                pipe=pipe,
                login_ip=Limit("login_ip", login_ip, login_ip_window),
                recovery=Limit("recovery", recovery, recovery_window),
            ),
            breakers=breakers,
            proxies=TrustedProxies(settings.gateway_trusted_proxies),
            cors=Cors(settings.cors_origins),
            max_body=settings.max_body_bytes,
            body_timeout=settings.client_body_timeout,
            uploads_per_ip=settings.client_uploads_per_ip,
        )
        # Redis down: token requests are refused (503) but public routes go on under per-process
        # limits, so the replica stays in the load balancer, reporting Redis as down.
        keep_state(
            app,
            GatewayState(edge, MergedDocument(http, upstreams)),
            degradable_checks={"redis": redis.ping},
        )
        try:
            yield
        finally:
            drop_state(app)
            for breaker in breakers.values():
                await breaker.aclose()
            for pool in pools.values():
                pool.close()
            await http.aclose()
            if pipe is not None:
                await pipe.aclose()
            await redis.aclose()

    app = create_service_app(
        SERVICE_NAME,
        settings,
        lifespan=lifespan,
        routers=[] if settings.is_production else [docs_router],
        description="The public edge.",
    )
    # The gateway's own FastAPI document would describe nothing public (only /health and the
    # like): the platform's document is /api/openapi.json, its Swagger UI /api/docs.
    own_docs = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
    app.router.routes = [
        route for route in app.router.routes if getattr(route, "path", None) not in own_docs
    ]
    app.openapi_url = None
    if not settings.is_production:
        app.add_route("/docs", _to_api_docs, methods=["GET"], include_in_schema=False)
    runtime = runtime_of(app)

    def edge_of() -> Edge | None:
        state = runtime.service
        return state.edge if isinstance(state, GatewayState) else None

    # The gateway goes in front of the whole FastAPI stack, not inside it as a middleware:
    # proxied requests then skip FastAPI's error, telemetry and body-limit layers (they cost
    # about a tenth of the hot path's CPU). Built now, so nothing can be added to the app later.
    app.middleware_stack = gateway = Gateway(app.build_middleware_stack(), edge_of=edge_of)
    # Served (common.serve), a proxied request goes from the server's protocol straight to the
    # gateway's exchange, in front of Starlette's entry as well.
    answer_directly(app, gateway)
    return app


async def _to_api_docs(request: Request) -> RedirectResponse:
    return RedirectResponse("/api/docs", status_code=307)
