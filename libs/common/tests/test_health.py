from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from common.app import create_service_app
from common.health import readiness
from common.settings import ServiceSettings
from common.state import runtime_of


async def ok() -> None:
    return None


async def down() -> None:
    raise ConnectionRefusedError


async def test_ready_when_every_check_passes() -> None:
    response = await readiness({"database": ok, "redis": ok}, draining=False)
    assert response.status_code == 200


async def test_not_ready_names_the_failed_dependency() -> None:
    response = await readiness({"database": ok, "redis": down}, draining=False)
    assert response.status_code == 503
    assert b"redis" in response.body
    assert response.media_type == "application/problem+json"


async def test_a_degradable_dependency_down_is_reported_but_ready() -> None:
    response = await readiness({"database": ok}, draining=False, degradable={"broker": down})
    assert response.status_code == 200
    assert json.loads(bytes(response.body)) == {
        "status": "degraded",
        "checks": {"database": "ok", "broker": "ConnectionRefusedError"},
    }


async def test_a_required_dependency_down_fails_whatever_the_degradable_ones_say() -> None:
    response = await readiness({"database": down}, draining=False, degradable={"broker": ok})
    assert response.status_code == 503
    body = json.loads(bytes(response.body))
    assert body["detail"] == "Dependencies not ready: database"
    assert body["checks"] == {"database": "ConnectionRefusedError", "broker": "ok"}


async def test_hanging_check_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("common.health.CHECK_TIMEOUT_SECONDS", 0.05)

    async def hang() -> None:
        await asyncio.sleep(10)

    response = await readiness({"broker": hang}, draining=False)
    assert response.status_code == 503


async def test_draining_process_is_not_ready() -> None:
    assert (await readiness({"database": ok}, draining=True)).status_code == 503


async def test_service_app_serves_health_ready_and_metrics() -> None:
    app = create_service_app("sample", ServiceSettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/ready")).status_code == 200
        metrics = await client.get("/metrics")
        assert "gatehouse_http_requests_total" in metrics.text
        runtime_of(app).draining = True
        assert (await client.get("/ready")).status_code == 503
