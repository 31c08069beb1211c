"""SIGTERM, as Kubernetes sends it, against a real process: readiness fails at once, the request
in flight still gets its answer, new connections are refused, the lifespan closes. uvicorn then
re-raises the signal, so the process ends "killed by SIGTERM" (exit status 143 in a container)
only after all of that."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from common.testing import free_port

SERVICE = Path(__file__).with_name("slow_service.py")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    marker = tmp_path / "lifespan"
    process = subprocess.Popen([sys.executable, str(SERVICE), str(port), str(marker)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, "the service exited before it was ready"
        assert time.monotonic() < deadline, "the service did not become ready"
        time.sleep(0.05)
    yield process, url, marker
    if process.poll() is None:
        process.kill()
        process.wait()


async def test_sigterm_drains_in_flight_requests(
    service: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, url, marker = service
    assert marker.read_text() == "started"
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        in_flight = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.3)  # the request is being handled
        process.send_signal(signal.SIGTERM)
        response = await in_flight
    assert response.status_code == 200
    assert response.json() == {"status": "finished"}
    assert await asyncio.to_thread(process.wait, 30) == -signal.SIGTERM
    assert marker.read_text() == "closed"
    async with httpx.AsyncClient(base_url=url, timeout=1) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/health")


async def test_readiness_fails_as_soon_as_draining_starts(
    service: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, url, _marker = service
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        in_flight = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        # uvicorn has stopped accepting: a load balancer sees the pod leave either way.
        with pytest.raises(httpx.ConnectError):
            await client.get("/ready", headers={"Connection": "close"})
        assert (await in_flight).status_code == 200
    assert await asyncio.to_thread(process.wait, 30) == -signal.SIGTERM
