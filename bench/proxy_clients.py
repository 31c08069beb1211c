"""Which outbound HTTP client for the gateway's hot path: httpx, aiohttp or the gateway's own
(`gateway.upstream`: asyncio protocols and httptools), measured side by side.

One small upstream (uvicorn, its own process, answering a JSON body like `/users/me`) on
loopback; in this process, N requests at a fixed concurrency through a warm keep-alive pool of
each client, alternating, several rounds. Prints requests/s and this process's CPU per request
for each client per round, the medians and the ratios.
Run: `uv run python -m bench.proxy_clients [--requests 5000] [--concurrency 32]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from common.testing import free_port
from gateway.upstream import Upstream

UPSTREAM = """
import uvicorn
BODY = (b'{"id":"0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11","email":"ada@example.org",'
        b'"username":"ada","full_name":"Ada Lovelace","is_active":true,"roles":["user"],'
        b'"created_at":"2026-11-25T00:00:00Z"}')
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
# Idle keep-alive connections kept a minute (uvicorn's default is 5 s): each client's pool idles
# while the others run their round, and must find its connections still open.
uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning",
            access_log=False, timeout_keep_alive=60)
"""

Fetch = Callable[[], Awaitable[None]]


async def drive(fetch: Fetch, requests: int, concurrency: int) -> tuple[float, float]:
    """Requests per second and CPU µs per request for `requests` calls of `fetch`,
    `concurrency` at a time."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await fetch()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return requests / elapsed, cpu / requests * 1e6


async def run(requests: int, concurrency: int, rounds: int) -> None:
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port)])  # noqa: ASYNC220
    url = f"http://127.0.0.1:{port}/api/v1/users/me"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(100):
                try:
                    await probe.get(url, timeout=0.5)
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with (
            httpx.AsyncClient(limits=limits) as hx,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as ah,
        ):

            async def with_httpx() -> None:
                response = await hx.get(url)
                await response.aread()

            async def with_aiohttp() -> None:
                async with ah.get(url) as response:
                    await response.read()

            own = Upstream(
                url.rsplit("/api/", 1)[0],
                limit=concurrency,
                keepalive=3.0,
                connect_timeout=2.0,
                read_timeout=30.0,
            )

            async def with_gateway() -> None:
                response = await own.request("GET", b"/api/v1/users/me", b"", None)
                try:
                    while await response.read_chunk() is not None:
                        pass
                finally:
                    response.finish()

            clients: dict[str, Fetch] = {
                "httpx": with_httpx,
                "aiohttp": with_aiohttp,
                "gateway": with_gateway,
            }
            for fetch in clients.values():  # warm the pools
                await drive(fetch, 500, concurrency)
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
            print(
                f"== {requests} GETs at concurrency {concurrency}, {rounds} alternating rounds =="
            )
            for round_ in range(rounds):
                for name, fetch in clients.items():
                    rate, cpu = await drive(fetch, requests, concurrency)
                    results[name].append((rate, cpu))
                    print(f"round {round_ + 1} {name:8} {rate:8.0f} req/s  {cpu:6.1f} µs CPU/req")
            own.close()
        medians = {
            name: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
            for name, runs in results.items()
        }
        for name, (rate, cpu) in medians.items():
            print(f"median   {name:8} {rate:8.0f} req/s  {cpu:6.1f} µs CPU/req")
        print(f"aiohttp / httpx: {medians['aiohttp'][0] / medians['httpx'][0]:.1f}x req/s")
        print(f"gateway / aiohttp: {medians['gateway'][0] / medians['aiohttp'][0]:.1f}x req/s")
    finally:
        upstream.terminate()
        upstream.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="httpx, aiohttp, gateway.upstream as the proxy's client"
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.requests, arguments.concurrency, arguments.rounds))


if __name__ == "__main__":
    main()
