"""`GET /api/v1/users/me` side by side: users directly, through the gateway, through nginx (a bare
proxy) and HAProxy (the gateway's token checks done in C), the floor (bench.floor: the same
answer from a bare Starlette + asyncpg process) and the edge floor (bench.edge_floor: the
gateway's checks in the least Python a proxy can have). wrk on loopback, every target once per
round, several rounds; the CPU time of each target's own processes (from /proc) per request."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import syscalls
from bench.proc import cpu_split
from bench.summary import Summary
from bench.wrk import Load, wrk

PATH = "/api/v1/users/me"


@dataclass
class Target:
    name: str
    url: str
    pids: Callable[[], list[int]]  # the processes whose CPU is this target's own
    loads: list[Load] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # µs per request, one per round
    user: list[float] = field(default_factory=list)  # of which in user mode, µs per request


def _cpu(pids: list[int]) -> tuple[float, float]:
    """User + system, and user, CPU seconds of `pids` so far."""
    splits = [cpu_split(pid) for pid in pids]
    return sum(u + s for u, s in splits), sum(u for u, _ in splits)


def _median_ratio(ratios: list[float]) -> float:
    return statistics.median(ratios) if ratios else float("nan")


def measure(targets: list[Target], token: str, args: argparse.Namespace, summary: Summary) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    print(
        f"\n== GET {PATH}: wrk -t1 -c{args.connections} -d{args.seconds}s, "
        f"{args.rounds} alternating rounds of {', '.join(t.name for t in targets)} =="
    )
    for target in targets:  # warm-up: keep-alive pools, key and token caches, prepared queries
        wrk(target.url, 2, args.connections, headers=headers)
    for round_ in range(args.rounds):
        for target in targets:
            pids = target.pids()
            before, user_before = _cpu(pids)
            load = wrk(target.url, args.seconds, args.connections, headers=headers)
            after, user_after = _cpu(pids)
            cpu = (after - before) / max(load.requests, 1) * 1e6
            target.loads.append(load)
            target.cpu.append(cpu)
            target.user.append((user_after - user_before) / max(load.requests, 1) * 1e6)
            print(
                f"round {round_ + 1} {target.name:15} {load.requests_per_second:7.0f} req/s  "
                f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms  "
                f"non-2xx {load.non_2xx}  socket errors {load.socket_errors}  "
                f"CPU {cpu:4.0f} µs/req"
            )
    report(targets, summary)
    if "gateway" in {t.name for t in targets} and "haproxy" in {t.name for t in targets}:
        split(targets, summary)
        system_calls(targets, token, args, summary)
    own_cores(targets, token, args, summary)


# On its own cores: the service on the first CPU, the proxy in front of it and the load
# generator on the second (the machine's PostgreSQL and Redis, not the bench's to move, go
# where the kernel puts them).
SERVICE_CPUS, EDGE_CPUS = {0}, {1}


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` onto `cpus` (an affinity is each thread's own)."""
    for thread in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(thread), cpus)


def own_cores(
    targets: list[Target], token: str, args: argparse.Namespace, summary: Summary
) -> None:
    """The whole path's req/s when the proxy does not take the service's CPU: as in production,
    where each scales on its own, and unlike the rounds above, where users, the proxy, wrk,
    PostgreSQL and Redis share two cores, so that every µs a proxy spends is one users lacks
    (even HAProxy's C then costs users a tenth of its rate). Users direct, through the gateway
    and through HAProxy, alternating; the processes go back to every CPU after."""
    by_name = {target.name: target for target in targets}
    if "direct" not in by_name or "gateway" not in by_name or (os.cpu_count() or 1) < 2:
        return
    measured = [by_name[name] for name in ("direct", "gateway", "haproxy") if name in by_name]
    service = by_name["direct"].pids()
    edges = [pid for target in measured[1:] for pid in target.pids()]
    everywhere = os.sched_getaffinity(0)
    headers = {"Authorization": f"Bearer {token}"}
    print(
        f"\n== on own cores: users on CPU {min(SERVICE_CPUS)}, the proxy and wrk on CPU "
        f"{min(EDGE_CPUS)}; {args.rounds} alternating rounds of "
        f"{', '.join(t.name for t in measured)} =="
    )
    rates: dict[str, list[float]] = {target.name: [] for target in measured}
    try:
        for pid in service:
            pin(pid, SERVICE_CPUS)
        for pid in edges:
            pin(pid, EDGE_CPUS)
        for target in measured:
            wrk(target.url, 2, args.connections, headers=headers, cpus=EDGE_CPUS)
        for round_ in range(args.rounds):
            for target in measured:
                load = wrk(
                    target.url, args.seconds, args.connections, headers=headers, cpus=EDGE_CPUS
                )
                rates[target.name].append(load.requests_per_second)
                print(
                    f"round {round_ + 1} {target.name:15} {load.requests_per_second:7.0f} req/s  "
                    f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms  "
                    f"non-2xx {load.non_2xx}  socket errors {load.socket_errors}"
                )
    finally:
        for pid in service + edges:
            if os.path.exists(f"/proc/{pid}"):
                pin(pid, everywhere)
    for name in rates:
        if name == "direct":
            continue
        ratios = [x / y for x, y in zip(rates[name], rates["direct"], strict=True)]
        median = _median_ratio(ratios)
        print(
            f"ratio {name}/direct req/s on own cores per round: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}; median {median:.2f}"
            + ("   (target >= 0.9)" if name == "gateway" else "")
        )
        if name == "gateway":
            summary.add(
                "/me gateway→users ÷ users direct, req/s, own cores",
                f"{median:.2f}",
                ">= 0.9",
                median >= 0.9,
            )
        else:
            summary.add(f"/me {name}/direct req/s, own cores", f"{median:.2f}")


def split(targets: list[Target], summary: Summary) -> None:
    """The gateway's and HAProxy's CPU per request in user and system time: the system part is
    the kernel's work on their sockets (client, upstream, and the gateway's Redis), the user part
    their own code (HAProxy's includes an RS256 check on every request, which the gateway's
    verified-token cache skips)."""
    by_name = {target.name: target for target in targets}
    gateway, haproxy = by_name["gateway"], by_name["haproxy"]

    def parts(target: Target) -> tuple[list[float], list[float]]:
        return target.user, [cpu - user for cpu, user in zip(target.cpu, target.user, strict=True)]

    (gateway_user, gateway_system), (haproxy_user, haproxy_system) = parts(gateway), parts(haproxy)
    user = _median_ratio([x / y for x, y in zip(gateway_user, haproxy_user, strict=True) if y > 0])
    system = _median_ratio(
        [x / y for x, y in zip(gateway_system, haproxy_system, strict=True) if y > 0]
    )
    print(
        "user / system CPU per request (medians of rounds): "
        f"gateway {statistics.median(gateway_user):.0f} / {statistics.median(gateway_system):.0f}"
        f" µs, haproxy {statistics.median(haproxy_user):.0f} / "
        f"{statistics.median(haproxy_system):.0f} µs; gateway ÷ haproxy: user {user:.2f}x, "
        f"system {system:.2f}x"
    )
    summary.add("/me gateway user CPU/req ÷ haproxy's", f"{user:.2f}x")
    summary.add("/me gateway system CPU/req ÷ haproxy's", f"{system:.2f}x")


COUNTED = ("gateway", "haproxy", "edge-floor")


def system_calls(
    targets: list[Target], token: str, args: argparse.Namespace, summary: Summary
) -> None:
    """The proxies' system calls per request (bench.syscalls), one more wrk run each."""
    reason = syscalls.unavailable()
    if reason is not None:
        print(f"system calls per request: not counted ({reason})")
        return
    headers = {"Authorization": f"Bearer {token}"}
    counted = [target for target in targets if target.name in COUNTED]
    print(f"\n== system calls per request (perf stat), one wrk run of {args.seconds} s each ==")
    figures: dict[str, dict[str, float]] = {}
    for target in counted:
        figures[target.name], load = syscalls.count(
            target.pids(), target.url, args.seconds, args.connections, headers
        )
        per = figures[target.name]
        print(
            f"{target.name:15} all {per['all']:5.2f}  reads {per['reads']:4.2f}  "
            f"writes {per['writes']:4.2f}  polls {per['polls']:4.2f}  "
            f"({load.requests_per_second:.0f} req/s)"
        )
    gateway, haproxy = figures["gateway"], figures["haproxy"]
    summary.add("/me gateway system calls/req", f"{gateway['all']:.2f}")
    if haproxy["all"] > 0:
        summary.add(
            "/me gateway system calls/req ÷ haproxy's", f"{gateway['all'] / haproxy['all']:.2f}x"
        )


def report(targets: list[Target], summary: Summary) -> None:
    by_name = {target.name: target for target in targets}
    errors: list[tuple[str, int]] = []
    print("-- medians (CPU: the target's own processes) --")
    for target in targets:
        rate = statistics.median(x.requests_per_second for x in target.loads)
        print(
            f"{target.name:15} {rate:7.0f}"
            f" req/s  p50 {statistics.median(x.p50_ms for x in target.loads):6.2f} ms  "
            f"p99 {statistics.median(x.p99_ms for x in target.loads):6.2f} ms  "
            f"CPU {statistics.median(target.cpu):4.0f} µs/req"
        )
        refused = sum(x.non_2xx + x.socket_errors for x in target.loads)
        if refused:
            print(f"  WARNING: {target.name} answered {refused} requests with errors")
            errors.append((target.name, refused))

    def rates(a: str, b: str) -> list[float]:
        return [
            x.requests_per_second / y.requests_per_second
            for x, y in zip(by_name[a].loads, by_name[b].loads, strict=True)
        ]

    def cpus(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(by_name[a].cpu, by_name[b].cpu, strict=True) if y > 0]

    if "direct" in by_name:
        direct = by_name["direct"]
        summary.add(
            "/me users direct",
            f"{statistics.median(x.requests_per_second for x in direct.loads):.0f} req/s",
        )
        summary.add("/me users CPU/req (direct)", f"{statistics.median(direct.cpu):.0f} µs")
    if "gateway" in by_name and "direct" in by_name:
        gateway_rate = rates("gateway", "direct")
        print(
            f"ratio gateway/direct req/s per round: {', '.join(f'{r:.2f}' for r in gateway_rate)}"
        )
        median = _median_ratio(gateway_rate)
        print(f"ratio gateway/direct req/s (median): {median:.2f}   (target >= 0.9)")
        summary.add(
            "/me gateway→users ÷ users direct, req/s", f"{median:.2f}", ">= 0.9", median >= 0.9
        )
    if "gateway" in by_name:
        gateway_cpu = statistics.median(by_name["gateway"].cpu)
        print(f"gateway CPU per request (median): {gateway_cpu:.0f} µs   (target <= 300)")
        summary.add("/me gateway CPU/req", f"{gateway_cpu:.0f} µs", "<= 300 µs", gateway_cpu <= 300)
    for proxy in ("haproxy", "nginx"):
        if proxy not in by_name or "gateway" not in by_name or "direct" not in by_name:
            continue
        rate = _median_ratio(rates(proxy, "direct"))
        cpu = _median_ratio(cpus("gateway", proxy))
        goal = "   (target <= 1.0)" if proxy == "haproxy" else ""
        print(f"ratio {proxy}/direct req/s (median, reference): {rate:.2f}")
        print(
            f"gateway CPU/req as a multiple of {proxy}'s (median of rounds): {cpu:.2f}x{goal}  "
            f"({proxy} {statistics.median(by_name[proxy].cpu):.0f} µs/req)"
        )
        summary.add(f"/me {proxy}/direct req/s", f"{rate:.2f}")
        if proxy == "haproxy":
            summary.add("/me gateway CPU/req ÷ haproxy's", f"{cpu:.2f}x", "<= 1.0x", cpu <= 1.0)
        else:
            summary.add(f"/me gateway CPU/req ÷ {proxy}'s", f"{cpu:.1f}x")
    if "floor" in by_name and "direct" in by_name:
        rate = _median_ratio(rates("direct", "floor"))
        cpu = _median_ratio(cpus("direct", "floor"))
        print(f"ratio users/floor req/s (median): {rate:.2f}")
        print(
            f"users CPU/req as a multiple of the floor's (median of rounds): {cpu:.1f}x   "
            f"(target <= 2; floor {statistics.median(by_name['floor'].cpu):.0f} µs/req)"
        )
        summary.add("/me floor CPU/req", f"{statistics.median(by_name['floor'].cpu):.0f} µs")
        summary.add("/me users CPU/req ÷ floor's", f"{cpu:.1f}x", "<= 2x", cpu <= 2)
    for name, label in (("edge-floor", "edge floor"), ("edge-floor-asgi", "edge floor on uvicorn")):
        if name not in by_name or "gateway" not in by_name:
            continue
        cpu = _median_ratio(cpus("gateway", name))
        floor_cpu = statistics.median(by_name[name].cpu)
        print(
            f"gateway CPU/req as a multiple of the {label}'s (median of rounds): {cpu:.2f}x  "
            f"({label} {floor_cpu:.0f} µs/req)"
        )
        summary.add(f"/me {label} CPU/req", f"{floor_cpu:.0f} µs")
        summary.add(f"/me gateway CPU/req ÷ {label}'s", f"{cpu:.2f}x")
        if "haproxy" in by_name:
            ratio = _median_ratio(cpus(name, "haproxy"))
            print(f"{label} CPU/req as a multiple of haproxy's (median of rounds): {ratio:.2f}x")
            summary.add(f"/me {label} CPU/req ÷ haproxy's", f"{ratio:.2f}x")
    if "edge-floor" in by_name and "edge-floor-asgi" in by_name:
        asgi, own = by_name["edge-floor-asgi"].cpu, by_name["edge-floor"].cpu
        layer = statistics.median(x - y for x, y in zip(asgi, own, strict=True))
        print(
            f"uvicorn + ASGI, per request (edge floor on uvicorn − edge floor, median of rounds): "
            f"{layer:.0f} µs"
        )
        summary.add("/me server layer (uvicorn + ASGI) CPU/req", f"{layer:.0f} µs")
    for name, count in errors:
        summary.add(f"/me {name}: failed requests", str(count), "0", False)
