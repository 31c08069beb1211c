"""`make bench`: the platform on real infrastructure, measured side by side in one run.

1. `GET /api/v1/users/me` with one valid token, wrk on loopback, in alternating rounds (bench.me):
   directly against users; through the gateway (every check on: signature, revocation, rate
   limit — the limit set high enough never to refuse); through nginx (a bare proxy) and through
   HAProxy doing the token checks itself (bench.proxies; it must first refuse forged tokens), as
   reference lines; the floor (bench.floor: the same answer from bare Starlette + asyncpg); and
   the edge floor (bench.edge_floor: the gateway's token, revocation and limit checks and its
   headers, in the least Python a proxy can have: no framework, one coroutine per request).
   Prints requests/s, p50/p99 latency and CPU time per request of each target's own processes
   (from /proc), and the ratios: gateway/direct req/s, the gateway's CPU per request against
   HAProxy's and nginx's, users' CPU per request against the floor's; the gateway's and
   HAProxy's CPU per request split into user and system time (bench.me.split), and the system
   calls per request of the gateway, HAProxy and the edge floor (bench.syscalls: perf stat, a
   count that the machine's load does not move; skipped without perf). Then direct,
   gateway and HAProxy again with users on one CPU and the proxy and wrk on the other
   (bench.me.own_cores): the whole path's req/s when the proxy does not take the service's CPU.
2. auth's hot routes, introspection and refresh, beside their floor (bench.auth_floor), and
   JWKS (bench.auth_routes).
3. Registration → welcome email latency through the gateway at a steady registration rate.
4. Events throughput: outbox rows → relay → RabbitMQ → notifier → SMTP sink (bench.events).
First, the proxy-client choice: httpx, aiohttp and the gateway's own client against one
upstream (bench.proxy_clients). `--only me|auth|events` runs one step. Ends with a summary table of
every figure and its target.

Real PostgreSQL (fresh databases), Redis (DB 8, flushed), RabbitMQ (a throwaway vhost) and an
aiosmtpd sink; wrk, nginx and HAProxy from Debian (`make system-deps`). Only loopback, bounded
durations.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
import uuid
from pathlib import Path

import httpx
import redis
import uvloop
from common.testing import SmtpSink, free_port, fresh_database

from bench import auth_routes, edge_floor, events, floor, me, proxies, proxy_clients
from bench.listener import Listener
from bench.summary import Summary
from tests.integration.platform import (
    ROOT,
    SERVICES,
    Platform,
    platform_env,
    throwaway_vhost,
)

REDIS_URL = "redis://127.0.0.1:6379/8"
PASSWORD = "bench passphrase that is long enough"
STARTUP_SECONDS = 240.0
ME_TARGETS = ("direct", "gateway", "nginx", "haproxy", "floor", "edge-floor", "edge-floor-asgi")


def account() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "email": f"bench.{tag}@example.org",
        "username": f"bench_{tag}",
        "password": PASSWORD,
        "full_name": "Bench User",
    }


def token_for(gateway: str) -> tuple[dict[str, str], str]:
    """A new account, and an access token of its."""
    user = account()
    with httpx.Client(base_url=gateway, timeout=30.0) as client:
        client.post("/api/v1/users/", json=user).raise_for_status()
        response = client.post(
            "/api/v1/auth/login", data={"username": user["username"], "password": PASSWORD}
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return user, token


def same_answer(users_url: str, floor_url: str, token: str) -> None:
    """The floor must answer what users answers (else it is the floor of something else)."""
    headers = {"Authorization": f"Bearer {token}"}
    users, floor_answer = (
        httpx.get(url, headers=headers, timeout=10.0) for url in (users_url, floor_url)
    )
    if users.json() != floor_answer.json() or floor_answer.status_code != 200:
        raise RuntimeError(f"the floor answers {floor_answer.text}, users {users.text}")
    print(f"the floor answers as users does: {floor_answer.text}")


def same_header_names(gateway_url: str, floor_url: str, token: str) -> None:
    """The edge floor must send what the gateway sends: the same header fields."""
    headers = {"Authorization": f"Bearer {token}"}
    gateway, floor_answer = (
        httpx.get(url, headers=headers, timeout=10.0) for url in (gateway_url, floor_url)
    )
    names = [sorted(answer.headers.keys()) for answer in (gateway, floor_answer)]
    if names[0] != names[1]:
        raise RuntimeError(f"the edge floor sends {names[1]}, the gateway {names[0]}")
    print(f"the edge floor sends the gateway's header fields: {', '.join(names[0])}")


def measure_me(
    platform: Platform,
    token: str,
    users_database: str,
    args: argparse.Namespace,
    workdir: Path,
    summary: Summary,
) -> None:
    """Starts the reference proxies and the floor, checks HAProxy refuses forgeries, measures."""
    users = platform.processes["users"].pid
    gateway = platform.processes["gateway"].pid
    wanted = set(args.targets.split(","))
    targets = [
        target
        for target in (
            me.Target("direct", platform.url("users") + me.PATH, lambda: [users]),
            me.Target("gateway", platform.url("gateway") + me.PATH, lambda: [gateway]),
        )
        if target.name in wanted
    ]
    started: list[Listener] = []
    try:
        nginx = proxies.start_nginx(workdir, platform.ports["users"]) if "nginx" in wanted else None
        if nginx is not None:
            started.append(nginx)
            targets.append(me.Target("nginx", nginx.url + me.PATH, nginx.pids))
        elif "nginx" in wanted:
            print("nginx is not installed: no nginx line (`make system-deps`)")
        haproxy = None
        if "haproxy" in wanted:
            haproxy = proxies.start_haproxy(
                workdir,
                platform.ports["users"],
                key_pem=proxies.signing_key_pem(platform.url("auth"), token),
                issuer=platform.env["ISSUER"],
                audience=platform.env["AUDIENCE"],
                rate_limit=1_000_000,  # as GATEWAY_RATE_LIMIT here: counted, never reached
            )
            if haproxy is None:
                print("haproxy is not installed: no HAProxy line (`make system-deps`)")
        if haproxy is not None:
            started.append(haproxy)
            print("HAProxy's token check (bench.proxies.check_refuses_forgeries):")
            for line in proxies.check_refuses_forgeries(haproxy.url + me.PATH, token):
                print(f"  {line}")
            targets.append(me.Target("haproxy", haproxy.url + me.PATH, haproxy.pids))
        if "floor" in wanted:
            floor_process = floor.start(
                users_database,
                platform.url("auth"),
                platform.env["ISSUER"],
                platform.env["AUDIENCE"],
                workdir,
            )
            started.append(floor_process)
            same_answer(platform.url("users") + me.PATH, floor_process.url + me.PATH, token)
            targets.append(me.Target("floor", floor_process.url + me.PATH, floor_process.pids))
        for name in ("edge-floor", "edge-floor-asgi"):
            if name not in wanted:
                continue
            edge = edge_floor.start(
                platform.ports["users"],
                REDIS_URL,
                platform.url("auth"),
                platform.env["ISSUER"],
                platform.env["AUDIENCE"],
                workdir,
                asgi=name == "edge-floor-asgi",
            )
            started.append(edge)
            same_answer(platform.url("gateway") + me.PATH, edge.url + me.PATH, token)
            same_header_names(platform.url("gateway") + me.PATH, edge.url + me.PATH, token)
            targets.append(me.Target(name, edge.url + me.PATH, edge.pids))
        me.measure(targets, token, args, summary)
    finally:
        for listener in started:
            listener.stop()


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
    platform: Platform, sink: SmtpSink, count: int, rate: float | None, summary: Summary
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
    summary.add("registrations/s (bcrypt-bound)", f"{count / elapsed:.1f}")
    summary.add(
        "welcome emails delivered",
        f"{len(delivered)}/{count}",
        f"{count}/{count}",
        len(delivered) == count,
    )
    if latencies:
        p99 = events.percentile(latencies, 0.99)
        print(
            f"registration 201 → email accepted: p50 {statistics.median(latencies):.0f} ms, "
            f"p99 {p99:.0f} ms   (target p99 < 1000)"
        )
        summary.add("registration → email p99", f"{p99:.0f} ms", "< 1000 ms", p99 < 1000)


async def run(args: argparse.Namespace) -> None:
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make system-deps` (Debian package {tool})")
    started = time.monotonic()
    summary = Summary()
    try:
        await measure_all(args, summary)
    finally:
        summary.print()
        print(f"bench run time: {time.monotonic() - started:.0f} s")


async def measure_all(args: argparse.Namespace, summary: Summary) -> None:
    if args.only == "events":
        await measure_events(args, summary)
        return
    only_me = args.only in ("me", "auth")  # the HTTP steps only: no notifier, no events
    if not only_me:
        print("== the gateway's outbound client: httpx, aiohttp, own (bench.proxy_clients) ==")
        with summary.timed("proxy clients"):
            await proxy_clients.run(1000, args.connections, 3)
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
                # Kept after the run: each service's log, the proxies' configs and logs.
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
                        "GATEWAY_LOGIN_IP_RATE_LIMIT": "100000/minute",
                    },
                )
                platform = Platform(env, ports, workdir)
                try:
                    # `--only me|auth` needs no notifier: they touch auth, users and gateway.
                    with summary.timed("services start"):
                        for service in ("auth", "users", "gateway") if only_me else SERVICES:
                            # One at a time, each given longer than the tests give it: on a
                            # machine shared by many runs a cold start can take over a minute.
                            platform.start(service, wait=False)
                            platform.wait_ready(service, timeout=STARTUP_SECONDS)
                        user, token = token_for(platform.url("gateway"))
                    if args.only != "auth":
                        with summary.timed("/users/me"):
                            measure_me(platform, token, users_db, args, workdir, summary)
                    if args.only != "me":
                        with summary.timed("auth routes"):
                            await auth_routes.measure(platform, user, token, args, workdir, summary)
                    if not only_me:
                        with summary.timed("registrations"):
                            await measure_registrations(
                                platform, sink, args.registrations, args.registration_rate, summary
                            )
                finally:
                    platform.stop_all()
    finally:
        sink.stop()
    if not only_me:
        with summary.timed("events"):
            await measure_events(args, summary)


async def measure_events(args: argparse.Namespace, summary: Summary) -> None:
    print(
        f"\n== events: outbox → RabbitMQ → notifier → SMTP sink, {args.event_runs} runs of "
        f"{args.events} (bench.events) =="
    )
    rates: list[float] = []
    p99s: list[float] = []
    for _ in range(args.event_runs):
        result = await events.run(args.events, args.paced, args.rate)
        rates.append(result["events_per_second"])
        p99s.append(result["latency_p99_ms"])
        print(
            f"{result['events']:.0f} events in {result['seconds']:.2f}s = "
            f"{result['events_per_second']:.0f} events/s; commit → email at "
            f"{args.rate:.0f}/s: p50 {result['latency_p50_ms']:.1f} ms, "
            f"p99 {result['latency_p99_ms']:.1f} ms; duplicates {result['duplicates']:.0f}"
        )
        print(f"  {events.cpu_line(result)}")
    rate = statistics.median(rates)
    print(f"events/s (median of {len(rates)}): {rate:.0f}   (target >= 1000)")
    summary.add("events/s (outbox → email)", f"{rate:.0f}", ">= 1000", rate >= 1000)
    summary.add(
        f"event commit → email p99 at {args.rate:.0f}/s", f"{statistics.median(p99s):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Gatehouse benchmarks (see bench/run.py)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement")
    parser.add_argument(
        "--rounds",
        "--pairs",
        dest="rounds",
        type=int,
        default=3,
        help="alternating rounds of the /me targets (direct, gateway, nginx, haproxy, floor)",
    )
    parser.add_argument(
        "--auth-seconds",
        type=int,
        default=5,
        help="duration per measurement of auth's routes (introspection, refresh, JWKS)",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--targets",
        default=",".join(ME_TARGETS),
        help="the /me targets, comma-separated (default: all of them; e.g. direct,floor)",
    )
    parser.add_argument("--registrations", type=int, default=40)
    parser.add_argument(
        "--registration-rate",
        type=float,
        help="registrations/s for the latency run (default: 90%% of the measured capacity)",
    )
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--paced", type=int, default=300)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--event-runs", type=int, default=3)
    parser.add_argument(
        "--only",
        choices=("me", "auth", "events"),
        help="run one measurement only (me: GET /api/v1/users/me, every target; auth: "
        "introspection, refresh and JWKS beside their floor; events: outbox → notifier)",
    )
    # uvloop, as the services run under uvicorn (the outbox relay of bench.events runs here).
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
