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

from common.db import install_outage_handlers
from common.errors import (
    PROBLEM_SCHEMA_REF,
    install_error_handlers,
    problem_responses,
    problem_schemas,
)
from common.health import health_endpoint, ready_endpoint
from common.logs import RequestIdMiddleware
from common.metrics import MetricsMiddleware, metrics_endpoint
from common.settings import ServiceSettings
from common.state import install_runtime
from common.tracing import add_tracing

FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
NO_FRAMEWORK_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def declare_problems(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its error answers as they are sent: FastAPI declares its request
    validation answer as `HTTPValidationError` JSON, where ours is a problem+json 422
    (common.errors); `ProblemDetails` joins the components when anything refers to it."""
    validation_ref = {"$ref": "#/components/schemas/HTTPValidationError"}
    used = False
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            responses: dict[str, Any] = operation.get("responses", {})
            invalid = responses.get("422", {}).get("content", {}).get("application/json", {})
            if invalid.get("schema") == validation_ref:
                responses["422"] = problem_responses(422)[422]
            used = used or PROBLEM_SCHEMA_REF in repr(responses)
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    if used:
        schemas.update(problem_schemas())
    return document


class ServiceApp(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = declare_problems(super().openapi())
        return self.openapi_schema


def create_service_app(
    name: str,
    settings: ServiceSettings,
    *,
    lifespan: Lifespan[FastAPI] | None = None,
    routers: Sequence[APIRouter] = (),
    description: str = "",
    telemetry: TelemetryConfig | None = None,
) -> FastAPI:
    """`telemetry` configures FastAPI's own OpenTelemetry instrumentation; off unless given. It
    acts only when process-global OpenTelemetry providers are set, which the platform never does
    (its tracing is `add_tracing`'s), yet it looks those providers up, environment variables
    included, on every request (measured in the gateway first, then in users and auth)."""
    docs = not settings.is_production
    app = ServiceApp(
        title=f"Gatehouse {name}",
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        telemetry=telemetry or NO_FRAMEWORK_TELEMETRY,
    )
    install_runtime(app, settings)
    install_error_handlers(app)
    install_outage_handlers(app)
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
