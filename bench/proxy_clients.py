"""Which outbound HTTP client for the gateway's hot path: httpx or aiohttp, measured side by side.

One small upstream (uvicorn, its own process, answering a JSON body like `/users/me`) on
loopback; in this process, N requests at a fixed concurrency through a warm keep-alive pool of
each client, alternating, several rounds. Prints requests/s per client per round, the medians and
the ratio. Run: `uv run python -m bench.proxy_clients [--requests 5000] [--concurrency 32]`.
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

from tests.integration.platform import free_port

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
uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning",
            access_log=False)
"""

Fetch = Callable[[], Awaitable[None]]


async def drive(fetch: Fetch, requests: int, concurrency: int) -> float:
    """Requests per second for `requests` calls of `fetch`, `concurrency` at a time."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await fetch()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


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

            clients: dict[str, Fetch] = {"httpx": with_httpx, "aiohttp": with_aiohttp}
            for fetch in clients.values():  # warm the pools
                await drive(fetch, 500, concurrency)
            results: dict[str, list[float]] = {name: [] for name in clients}
            print(
                f"== {requests} GETs at concurrency {concurrency}, {rounds} alternating rounds =="
            )
            for round_ in range(rounds):
                for name, fetch in clients.items():
                    rate = await drive(fetch, requests, concurrency)
                    results[name].append(rate)
                    print(f"round {round_ + 1} {name:8} {rate:8.0f} req/s")
        medians = {name: statistics.median(rates) for name, rates in results.items()}
        for name, rate in medians.items():
            print(f"median   {name:8} {rate:8.0f} req/s")
        print(f"aiohttp / httpx: {medians['aiohttp'] / medians['httpx']:.1f}x")
    finally:
        upstream.terminate()
        upstream.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description="httpx vs aiohttp as the proxy's client")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.requests, arguments.concurrency, arguments.rounds))


if __name__ == "__main__":
    main()
