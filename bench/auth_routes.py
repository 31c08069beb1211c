"""auth's hot routes side by side with their floor (bench.auth_floor), in alternating rounds:

- introspection (`POST /internal/v1/introspect`, the gateway's client over HTTP Basic, one user
  access token, `token_type_hint=access_token`): wrk with a Lua script for the form body;
- refresh (`POST /api/v1/auth/refresh`): each refresh token works once, so not wrk: one chain per
  connection here (aiohttp), each presenting the token its previous answer returned; the chains
  start from fresh logins (bcrypt) that auth and the floor share (one database);
- JWKS (`GET /.well-known/jwks.json`), measured only.

CPU per request of auth's process and of the floor's (from /proc); for refresh also users' (both
ask users for the account's roles)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from common.settings import DEV_SECRET_PREFIX

from bench import auth_floor, events
from bench.me import Target
from bench.proc import cpu_seconds
from bench.summary import Summary
from bench.wrk import Load, wrk
from tests.integration.platform import Platform

INTROSPECT = "/internal/v1/introspect"
REFRESH = "/api/v1/auth/refresh"
JWKS = "/.well-known/jwks.json"
# Refresh chains: RSA signing makes a refresh cost milliseconds, so a few keep one process busy;
# every chain starts with a login (bcrypt cost 12).
REFRESH_CHAINS = 8

Run = Callable[[Target], Awaitable[Load]]


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def alternate(
    title: str,
    targets: list[Target],
    run: Run,
    rounds: int,
    extra: dict[str, int],
    prepare: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, list[float]]:
    """Each target once per round; `extra`: other processes whose CPU per request is kept too
    (returned as `<target> <name>` → µs per request, one per round); `prepare`: run before
    each measurement, outside it."""
    print(f"\n== {title}: {rounds} alternating rounds of {', '.join(t.name for t in targets)} ==")
    others: dict[str, list[float]] = {}
    for round_ in range(rounds):
        for target in targets:
            if prepare is not None:
                await prepare()
            pids = target.pids()
            before = _cpu(pids)
            before_extra = {name: cpu_seconds(pid) for name, pid in extra.items()}
            load = await run(target)
            requests = max(load.requests, 1)
            cpu = (_cpu(pids) - before) / requests * 1e6
            target.loads.append(load)
            target.cpu.append(cpu)
            extras = ""
            for name, pid in extra.items():
                per_request = (cpu_seconds(pid) - before_extra[name]) / requests * 1e6
                others.setdefault(f"{target.name} {name}", []).append(per_request)
                extras += f"  {name} {per_request:4.0f} µs/req"
            print(
                f"round {round_ + 1} {target.name:7} {load.requests_per_second:7.0f} req/s  "
                f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms  "
                f"errors {load.non_2xx + load.socket_errors}  CPU {cpu:4.0f} µs/req{extras}"
            )
    return others


def report(route: str, targets: list[Target], summary: Summary) -> None:
    for target in targets:
        rate = statistics.median(x.requests_per_second for x in target.loads)
        cpu = statistics.median(target.cpu)
        print(
            f"median {target.name:7} {rate:7.0f} req/s  "
            f"p50 {statistics.median(x.p50_ms for x in target.loads):6.2f} ms  "
            f"CPU {cpu:4.0f} µs/req"
        )
        summary.add(f"{route} {target.name} req/s", f"{rate:.0f}")
        summary.add(f"{route} {target.name} CPU/req", f"{cpu:.0f} µs")
        errors = sum(x.non_2xx + x.socket_errors for x in target.loads)
        if errors:
            print(f"  WARNING: {target.name} answered {errors} requests with errors")
            summary.add(f"{route} {target.name}: failed requests", str(errors), "0", False)
    if len(targets) == 2:
        service, floor = targets
        ratios = [a / b for a, b in zip(service.cpu, floor.cpu, strict=True) if b > 0]
        ratio = statistics.median(ratios) if ratios else float("nan")
        print(
            f"{service.name} CPU/req as a multiple of the floor's (median of rounds): "
            f"{ratio:.1f}x   (target <= 2, as for /users/me)"
        )
        summary.add(
            f"{route} {service.name} CPU/req ÷ floor's", f"{ratio:.1f}x", "<= 2x", ratio <= 2
        )


async def login_refresh_token(auth_url: str, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=auth_url, timeout=60.0) as client:
        response = await client.post(
            "/api/v1/auth/login", data={"username": username, "password": password}
        )
        response.raise_for_status()
        token: str = response.json()["refresh_token"]
        return token


async def refresh_chains(url: str, tokens: list[str], seconds: float) -> Load:
    """Every live chain refreshing for `seconds`; a chain whose refresh fails stops (its token
    may be spent) and is marked dead with an empty token; the first failure is printed."""
    latencies: list[float] = []
    failures: list[str] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=len(tokens))
    async with aiohttp.ClientSession(connector=connector) as http:

        async def chain(index: int) -> None:
            nonlocal errors
            while tokens[index] and time.perf_counter() < deadline:
                started = time.perf_counter()
                async with http.post(url, json={"refresh_token": tokens[index]}) as response:
                    body = await response.json() if response.status == 200 else None
                    if body is None:
                        failures.append(f"{response.status} {await response.text()}")
                if body is None:
                    errors += 1
                    tokens[index] = ""
                    return
                tokens[index] = body["refresh_token"]
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(chain(index) for index in range(len(tokens))))
        elapsed = time.perf_counter() - started
    if failures:
        print(f"  {len(failures)} refresh chains broke at {url}; the first: {failures[0][:200]}")
    if not latencies:
        raise RuntimeError(f"no refresh succeeded at {url}")
    return Load(
        len(latencies),
        len(latencies) / elapsed,
        statistics.median(latencies),
        events.percentile(latencies, 0.99),
        errors,
        0,
    )


def introspection_script(directory: Path, access_token: str) -> Path:
    script = directory / "introspect.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "token={access_token}&token_type_hint=access_token"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )
    return script


def same_introspection(urls: list[str], headers: dict[str, str], token: str) -> None:
    form = {"token": token, "token_type_hint": "access_token"}
    answers = [httpx.post(url, data=form, headers=headers, timeout=10.0) for url in urls]
    bodies = [answer.json() for answer in answers]
    if any(body != bodies[0] for body in bodies) or bodies[0].get("active") is not True:
        raise RuntimeError(f"introspection answers differ or are inactive: {bodies}")
    print(f"auth and its floor introspect alike: {answers[0].text[:120]}...")


async def measure(
    platform: Platform,
    user: dict[str, str],
    access_token: str,
    args: argparse.Namespace,
    workdir: Path,
    summary: Summary,
) -> None:
    auth_url = platform.url("auth")
    auth_pid = platform.processes["auth"].pid
    users_pid = platform.processes["users"].pid
    floor = auth_floor.start(platform.env, workdir)
    try:
        secret = platform.env.get(
            "INTERNAL_CLIENT_SECRET", DEV_SECRET_PREFIX + "internal-client-secret"
        )
        basic = base64.b64encode(f"gateway:{secret}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        same_introspection([auth_url + INTROSPECT, floor.url + INTROSPECT], headers, access_token)
        script = introspection_script(workdir, access_token)
        seconds, connections = args.auth_seconds, args.connections

        async def introspect(target: Target) -> Load:
            return wrk(target.url, seconds, connections, headers=headers, script=script)

        targets = [
            Target("auth", auth_url + INTROSPECT, lambda: [auth_pid]),
            Target("floor", floor.url + INTROSPECT, floor.pids),
        ]
        for target in targets:  # warm-up
            wrk(target.url, 2, connections, headers=headers, script=script)
        title = f"introspection: wrk -t1 -c{connections} -d{seconds}s"
        await alternate(title, targets, introspect, args.rounds, {})
        report("introspect", targets, summary)

        print(f"\n{REFRESH_CHAINS} sessions for the refresh chains (logins, bcrypt-bound)...")
        tokens = [""] * REFRESH_CHAINS

        async def replenish() -> None:
            """A new session for each broken chain. One login at a time: users hashes two at
            once, and auth gives users 5 s to answer."""
            for index, token in enumerate(tokens):
                if not token:
                    tokens[index] = await login_refresh_token(
                        auth_url, user["username"], user["password"]
                    )

        await replenish()

        async def refresh(target: Target) -> Load:
            return await refresh_chains(target.url, tokens, seconds)

        targets = [
            Target("auth", auth_url + REFRESH, lambda: [auth_pid]),
            Target("floor", floor.url + REFRESH, floor.pids),
        ]
        for target in targets:  # warm-up
            await refresh_chains(target.url, tokens, 2)
        title = f"refresh: {REFRESH_CHAINS} chains, {seconds}s each"
        users_cpu = await alternate(
            title, targets, refresh, args.rounds, {"users": users_pid}, replenish
        )
        report("refresh", targets, summary)
        for name, values in users_cpu.items():
            print(f"median {name} CPU {statistics.median(values):4.0f} µs/refresh")
            summary.add(f"refresh {name} CPU/req", f"{statistics.median(values):.0f} µs")
    finally:
        floor.stop()

    jwks = [Target("auth", auth_url + JWKS, lambda: [auth_pid])]

    async def fetch_jwks(target: Target) -> Load:
        return wrk(target.url, seconds, connections)

    wrk(jwks[0].url, 2, connections)
    await alternate(
        f"JWKS: wrk -t1 -c{connections} -d{seconds}s", jwks, fetch_jwks, args.rounds, {}
    )
    report("jwks", jwks, summary)
