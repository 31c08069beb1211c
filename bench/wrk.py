"""wrk (Debian's) driven from Python: one bounded run against one URL, its figures parsed."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


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


def wrk(
    url: str,
    seconds: int,
    connections: int,
    *,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    timeout: int = 10,
    cpus: set[int] | None = None,
) -> Load:
    """`wrk -t1` for `seconds` at `connections`; `script`: a wrk Lua script (method, body...).
    `timeout`: seconds before wrk counts a request as failed (its default, 2 s, is reached by
    mere queueing when 32 connections wait on a slow route of a busy shared machine).
    `cpus`: the CPUs wrk may run on (all, by default)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}s"]
    command.append("--latency")
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, preexec_fn=pin
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
