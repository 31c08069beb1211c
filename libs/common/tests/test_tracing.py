"""Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; when set, spans reach the collector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from common.app import create_service_app
from common.settings import ServiceSettings
from fastapi import APIRouter, FastAPI, Request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

router = APIRouter()


@router.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


class Collector:
    """A stand-in OTLP/HTTP collector on a loopback port, recording what it receives."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        app = FastAPI()
        app.add_api_route("/v1/traces", self.receive, methods=["POST"])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
        )

    async def receive(self, request: Request) -> dict[str, str]:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        self.requests.append(message)
        return {}

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def span_names(self) -> list[str]:
        return [
            span.name
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    collector = Collector()
    task = asyncio.create_task(collector.server.serve())
    while not collector.server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    yield collector
    collector.server.should_exit = True
    await task


def test_tracing_is_off_by_default() -> None:
    app = create_service_app("plain", ServiceSettings(), routers=[router])
    names = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[attr-defined]
    assert "OpenTelemetryMiddleware" not in names
    assert not hasattr(app.state, "tracer_provider")


async def test_spans_reach_the_collector_when_an_endpoint_is_set(collector: Collector) -> None:
    settings = ServiceSettings(otel_exporter_otlp_endpoint=collector.url)
    app = create_service_app("traced", settings, routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(
            "/hello",
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        )
    assert response.status_code == 200
    provider = app.state.tracer_provider
    await asyncio.to_thread(provider.force_flush)
    await asyncio.to_thread(provider.shutdown)
    assert any("/hello" in name for name in collector.span_names()), collector.span_names()
    trace_ids = {
        span.trace_id.hex()
        for request in collector.requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert trace_ids == {"0af7651916cd43dd8448eb211c80319c"}  # the caller's trace continued


def span_attributes(collector: Collector) -> list[dict[str, str]]:
    return [
        {kv.key: kv.value.string_value for kv in span.attributes}
        for request in collector.requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


async def test_spans_never_carry_the_query_string(collector: Collector) -> None:
    """The account pages' links carry a token in the query (API.md §8)."""
    settings = ServiceSettings(otel_exporter_otlp_endpoint=collector.url)
    app = create_service_app("traced", settings, routers=[router])
    secret = "a-link-token-that-must-not-be-traced"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/hello", params={"token": secret})
    assert response.status_code == 200
    provider = app.state.tracer_provider
    await asyncio.to_thread(provider.force_flush)
    await asyncio.to_thread(provider.shutdown)
    spans = span_attributes(collector)
    assert spans
    assert all(secret not in str(span) for span in spans), spans
    assert any(span.get("http.target") == "/hello" for span in spans), spans
    assert all(secret not in str(request) for request in collector.requests)
