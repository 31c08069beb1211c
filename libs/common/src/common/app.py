"""The one place a service's FastAPI app is assembled, so every service behaves alike.

Each service passes its name, settings, lifespan and routers; this adds the problem+json handlers,
request ids, metrics, optional tracing, `/health`, `/ready` and `/metrics`. Docs are off in
production.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import Lifespan

from common.errors import install_error_handlers
from common.health import health_endpoint, ready_endpoint
from common.logs import RequestIdMiddleware
from common.metrics import MetricsMiddleware, metrics_endpoint
from common.settings import ServiceSettings
from common.tracing import add_tracing


def create_service_app(
    name: str,
    settings: ServiceSettings,
    *,
    lifespan: Lifespan[FastAPI] | None = None,
    routers: Sequence[APIRouter] = (),
    description: str = "",
    telemetry: TelemetryConfig | None = None,
) -> FastAPI:
    """`telemetry` configures FastAPI's own OpenTelemetry instrumentation (which acts only when
    global OpenTelemetry providers are set; the platform's tracing is `add_tracing`'s)."""
    docs = not settings.is_production
    app = FastAPI(
        title=f"Gatehouse {name}",
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        telemetry=telemetry,
    )
    app.state.settings = settings
    app.state.draining = False
    app.state.readiness_checks = {}
    app.state.degradable_checks = {}
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    ops: dict[str, Any] = {"include_in_schema": False}
    app.add_route("/health", health_endpoint, methods=["GET"], **ops)
    app.add_route("/ready", ready_endpoint, methods=["GET"], **ops)
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], **ops)
    add_tracing(app, name, settings.otel_exporter_otlp_endpoint)
    app.add_middleware(MetricsMiddleware, service=name)
    app.add_middleware(RequestIdMiddleware)
    return app


LifespanContext = AbstractAsyncContextManager[None]
