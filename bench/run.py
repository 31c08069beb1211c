"""`make bench`: the platform on real infrastructure, measured side by side in one run.

1. `GET /api/v1/users/me` with one valid token, wrk on loopback, alternating pairs:
   directly against users, then through the gateway (every check on: signature, revocation,
   rate limit — the limit set high enough never to refuse), then through nginx proxying to users
   as a reference line. Prints requests/s, p50/p99 latency, the ratio gateway/direct per pair and
   its median, and CPU time per request of the gateway and users processes (from /proc).
2. Registration → welcome email latency through the gateway at a steady registration rate.
3. Events throughput: outbox rows → relay → RabbitMQ → notifier → SMTP sink (bench.events).
First, the proxy-client choice: httpx, aiohttp and the gateway's own client against one
upstream (bench.proxy_clients). `--only me` runs step 1 alone.

Real PostgreSQL (fresh databases), Redis (DB 8, flushed), RabbitMQ (a throwaway vhost) and an
aiosmtpd sink; wrk and nginx from Debian (`make system-deps`). Only loopback, bounded durations.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
import uvloop
from common.testing import fresh_database

from bench import events, proxy_clients
from bench.proc import cpu_seconds
from services.notifier.tests.smtp_sink import SmtpSink
from tests.integration.platform import (
    ROOT,
    SERVICES,
    Platform,
    free_port,
    platform_env,
    throwaway_vhost,
)

REDIS_URL = "redis://127.0.0.1:6379/8"
PASSWORD = "bench passphrase that is long enough"


@dataclass(frozen=True)
class Load:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def _milliseconds(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if match is None:
        raise ValueError(f"unexpected wrk latency {value!r}")
    number, unit = match.groups()
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
    return float(number) * scale[unit]


def wrk(url: str, token: str, seconds: int, connections: int) -> Load:
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Requests/sec" not in output or "50%" not in output:
        raise RuntimeError(f"wrk printed no figures for {url}:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1)  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = sum(int(n) for n in sockets.groups()) if sockets else 0
    return Load(
        requests,
        rate,
        _milliseconds(p50),
        _milliseconds(p99),
        int(errors.group(1)) if errors else 0,
        socket_errors,
    )


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream users {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://users;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def start_nginx(directory: Path, upstream: int) -> tuple[subprocess.Popen[bytes], int] | None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        return None
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(NGINX_CONF.format(dir=directory, upstream=upstream, port=port))
    process = subprocess.Popen([nginx, "-c", str(config), "-p", str(directory)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)
            return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    return None


def account() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "email": f"bench.{tag}@example.org",
        "username": f"bench_{tag}",
        "password": PASSWORD,
        "full_name": "Bench User",
    }


def token_for(gateway: str) -> str:
    user = account()
    with httpx.Client(base_url=gateway, timeout=30.0) as client:
        client.post("/api/v1/users/", json=user).raise_for_status()
        response = client.post(
            "/api/v1/auth/login", data={"username": user["username"], "password": PASSWORD}
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


def measure_me(platform: Platform, token: str, args: argparse.Namespace, workdir: Path) -> None:
    path = "/api/v1/users/me"
    targets = {"direct": platform.url("users") + path, "gateway": platform.url("gateway") + path}
    nginx = start_nginx(workdir, platform.ports["users"])
    if nginx is not None:
        targets["nginx"] = f"http://127.0.0.1:{nginx[1]}{path}"
    gateway_pid = platform.processes["gateway"].pid
    users_pid = platform.processes["users"].pid
    print(f"\n== GET {path}: wrk -t1 -c{args.connections} -d{args.seconds}s, {args.pairs} pairs ==")
    for url in targets.values():  # warm-up: keep-alive pools, key and token caches
        wrk(url, token, 2, args.connections)
    results: dict[str, list[Load]] = {name: [] for name in targets}
    gateway_cpu: list[float] = []
    users_cpu: list[float] = []
    try:
        for pair in range(args.pairs):
            for name, url in targets.items():
                before = {pid: cpu_seconds(pid) for pid in (gateway_pid, users_pid)}
                load = wrk(url, token, args.seconds, args.connections)
                after = {pid: cpu_seconds(pid) for pid in (gateway_pid, users_pid)}
                results[name].append(load)
                per_request = {
                    pid: (after[pid] - before[pid]) / max(load.requests, 1) * 1e6 for pid in after
                }
                cpu = ""
                if name == "gateway":
                    gateway_cpu.append(per_request[gateway_pid])
                    cpu = f"  gateway CPU {per_request[gateway_pid]:4.0f} µs/req"
                if name == "direct":
                    users_cpu.append(per_request[users_pid])
                    cpu = f"  users CPU {per_request[users_pid]:4.0f} µs/req"
                print(
                    f"pair {pair + 1} {name:8} {load.requests_per_second:9.0f} req/s  "
                    f"p50 {load.p50_ms:7.2f} ms  p99 {load.p99_ms:7.2f} ms  "
                    f"non-2xx {load.non_2xx}  socket errors {load.socket_errors}{cpu}"
                )
    finally:
        if nginx is not None:
            nginx[0].terminate()
            nginx[0].wait(10)
    ratios = [
        g.requests_per_second / d.requests_per_second
        for g, d in zip(results["gateway"], results["direct"], strict=True)
    ]
    print("-- medians --")
    for name, loads in results.items():
        print(
            f"{name:8} {statistics.median(x.requests_per_second for x in loads):9.0f} req/s  "
            f"p50 {statistics.median(x.p50_ms for x in loads):7.2f} ms  "
            f"p99 {statistics.median(x.p99_ms for x in loads):7.2f} ms"
        )
    print(f"ratio gateway/direct per pair: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio gateway/direct (median): {statistics.median(ratios):.2f}   (target >= 0.8)")
    if "nginx" in results:
        nginx_ratio = statistics.median(
            n.requests_per_second / d.requests_per_second
            for n, d in zip(results["nginx"], results["direct"], strict=True)
        )
        print(f"ratio nginx/direct (median, reference): {nginx_ratio:.2f}")
    print(
        f"gateway CPU per request (median): {statistics.median(gateway_cpu):.0f} µs"
        "   (target <= 300)"
    )
    print(f"users CPU per request, direct (median): {statistics.median(users_cpu):.0f} µs")


async def registration_capacity(platform: Platform, count: int = 24, concurrency: int = 8) -> float:
    """Registrations/s the machine sustains: `count` sent `concurrency` at a time (bcrypt-bound)."""
    async with httpx.AsyncClient(base_url=platform.url("gateway"), timeout=60.0) as client:
        slots = asyncio.Semaphore(concurrency)

        async def register() -> None:
            async with slots:
                (await client.post("/api/v1/users/", json=account())).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(register() for _ in range(count)))
        return count / (time.perf_counter() - started)


async def measure_registrations(
    platform: Platform, sink: SmtpSink, count: int, rate: float | None
) -> None:
    print("\n== registration → welcome email ==")
    if rate is None:
        capacity = await registration_capacity(platform)
        rate = 0.9 * capacity
        print(
            f"capacity: {capacity:.1f} registrations/s (24 at 8 concurrent; bcrypt cost 12); "
            f"paced at 90% of it"
        )
    print(f"{count} registrations at {rate:.1f}/s through the gateway")
    registered: dict[str, float] = {}
    received: dict[str, float] = {}
    started = time.perf_counter()

    async def register(client: httpx.AsyncClient, user: dict[str, str]) -> None:
        response = await client.post("/api/v1/users/", json=user)
        response.raise_for_status()
        registered[user["email"]] = time.perf_counter()

    async def watch() -> None:
        """Stamp each welcome email when the sink has it (every 5 ms, during the run)."""
        seen = 0
        while True:
            messages = sink.handler.messages
            for message in messages[seen:]:
                received.setdefault(str(message["To"].addresses[0].addr_spec), time.perf_counter())
            seen = len(messages)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    async with httpx.AsyncClient(base_url=platform.url("gateway"), timeout=60.0) as client:
        tasks = []
        for index in range(count):
            tasks.append(asyncio.create_task(register(client, account())))
            await asyncio.sleep(max(0.0, started + (index + 1) / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    deadline = time.perf_counter() + 60
    while not set(registered) <= set(received) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    watcher.cancel()
    delivered = [e for e in registered if e in received]
    latencies = sorted((received[e] - registered[e]) * 1000 for e in delivered)
    print(
        f"sustained {count / elapsed:.1f} registrations/s (bcrypt-bound); "
        f"{len(delivered)}/{count} emails"
    )
    if latencies:
        print(
            f"registration 201 → email accepted: p50 {statistics.median(latencies):.0f} ms, "
            f"p99 {events.percentile(latencies, 0.99):.0f} ms   (target p99 < 1000)"
        )


async def run(args: argparse.Namespace) -> None:
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make system-deps` (Debian package {tool})")
    if args.only == "events":
        await measure_events(args)
        return
    only_me = args.only == "me"
    if not only_me:
        print("== the gateway's outbound client: httpx, aiohttp, own (bench.proxy_clients) ==")
        await proxy_clients.run(3000, args.connections, 3)
    redis.Redis.from_url(REDIS_URL).flushdb()
    sink = SmtpSink()
    sink.start()
    migrations = {s: ROOT / "services" / s / "migrations" for s in ("auth", "users", "notifier")}
    try:
        async with (
            fresh_database("bench_auth", migrations["auth"]) as auth_db,
            fresh_database("bench_users", migrations["users"]) as users_db,
            fresh_database("bench_notifier", migrations["notifier"]) as notifier_db,
        ):
            with throwaway_vhost() as amqp_url:
                # Kept after the run: each service's log, nginx's config and error log.
                workdir = ROOT / "var" / time.strftime("bench-%Y%m%d-%H%M%S")
                workdir.mkdir(parents=True)
                print(f"logs: {workdir}/")
                ports = {service: free_port() for service in SERVICES}
                env = platform_env(
                    {"auth": auth_db, "users": users_db, "notifier": notifier_db},
                    ports,
                    redis_url=REDIS_URL,
                    amqp_url=amqp_url,
                    smtp_port=sink.port,
                    extra={
                        "LOG_LEVEL": "WARNING",
                        "GATEWAY_RATE_LIMIT": "1000000/second",
                        "GATEWAY_LOGIN_RATE_LIMIT": "1000/minute",
                    },
                )
                platform = Platform(env, ports, workdir)
                try:
                    # `--only me` needs no notifier: /users/me touches auth, users and gateway.
                    platform.start(*(("auth", "users", "gateway") if only_me else ()))
                    token = token_for(platform.url("gateway"))
                    measure_me(platform, token, args, workdir)
                    if not only_me:
                        await measure_registrations(
                            platform, sink, args.registrations, args.registration_rate
                        )
                finally:
                    platform.stop_all()
    finally:
        sink.stop()
    if not only_me:
        await measure_events(args)


async def measure_events(args: argparse.Namespace) -> None:
    print(
        f"\n== events: outbox → RabbitMQ → notifier → SMTP sink, {args.event_runs} runs of "
        f"{args.events} (bench.events) =="
    )
    rates: list[float] = []
    for _ in range(args.event_runs):
        result = await events.run(args.events, args.paced, args.rate)
        rates.append(result["events_per_second"])
        print(
            f"{result['events']:.0f} events in {result['seconds']:.2f}s = "
            f"{result['events_per_second']:.0f} events/s; commit → email at "
            f"{args.rate:.0f}/s: p50 {result['latency_p50_ms']:.1f} ms, "
            f"p99 {result['latency_p99_ms']:.1f} ms; duplicates {result['duplicates']:.0f}"
        )
        print(f"  {events.cpu_line(result)}")
    print(f"events/s (median of {len(rates)}): {statistics.median(rates):.0f}   (target >= 1000)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Gatehouse benchmarks (see bench/run.py)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement")
    parser.add_argument("--pairs", type=int, default=3, help="alternating direct/gateway pairs")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--registrations", type=int, default=60)
    parser.add_argument(
        "--registration-rate",
        type=float,
        help="registrations/s for the latency run (default: 90%% of the measured capacity)",
    )
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--paced", type=int, default=300)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--event-runs", type=int, default=3)
    parser.add_argument(
        "--only",
        choices=("me", "events"),
        help="run one measurement only (me: GET /api/v1/users/me, direct vs gateway; "
        "events: outbox → notifier throughput)",
    )
    # uvloop, as the services run under uvicorn (the outbox relay of bench.events runs here).
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
