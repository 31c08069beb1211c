"""Optional OpenTelemetry tracing: on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else nothing.

When off, no OpenTelemetry module is imported and no middleware is added, so it costs nothing.
When on, every request gets a server span (W3C `traceparent` accepted from the caller) exported in
batches over OTLP/HTTP to `<endpoint>/v1/traces`, with `service.name` = `gatehouse-<service>`.
The provider is the app's own, not the process-global one, so tests and embedded mode (several
services in one process) keep their spans apart. A span never carries the query string: the
account pages' links put a token there (API.md §8: no log line, metric or trace shows it).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Scope

logger = logging.getLogger("gatehouse.tracing")


def add_tracing(app: FastAPI, service: str, endpoint: str | None) -> None:
    """Trace `app`'s requests when `endpoint` is set (the provider kept on `app.state`)."""
    if not endpoint:
        return
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app.state.tracer_provider = tracer_provider(service, endpoint)
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=app.state.tracer_provider,
        server_request_hook=without_query,
    )
    logger.info("tracing to %s", endpoint)


def tracing_middleware(app: ASGIApp, service: str, endpoint: str | None) -> ASGIApp:
    """`app` wrapped in a tracing middleware when `endpoint` is set, else `app` itself."""
    if not endpoint:
        return app
    provider = tracer_provider(service, endpoint)
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    logger.info("tracing to %s", endpoint)
    return OpenTelemetryMiddleware(app, tracer_provider=provider, server_request_hook=without_query)


def tracer_provider(service: str, endpoint: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"gatehouse-{service}"}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


# The span attributes the ASGI instrumentation fills with the request's target (both semantic
# convention versions); `without_query` rewrites them without the query string.
_URL_ATTRIBUTES = ("http.url", "url.full")
_TARGET_ATTRIBUTES = ("http.target",)


def without_query(span: Any, scope: Scope) -> None:
    """Server request hook: the span's URL attributes lose the query (a link token may be in it)."""
    if not scope.get("query_string") or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str):
            span.set_attribute(name, value.split("?", 1)[0])
    for name in _TARGET_ATTRIBUTES:
        if name in attributes:
            span.set_attribute(name, scope.get("path", ""))
    if "url.query" in attributes:
        span.set_attribute("url.query", "")
