"""System calls per request, counted by the kernel (`perf stat` on the syscall tracepoints) over
one wrk run per target. A count does not move with the machine's load as CPU time does, so it
shows in a single run what a change to a proxy's I/O did (a write carrying more, a read fewer).
Skipped, with a line saying why, where perf is missing or may not trace."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.wrk import Load, wrk

# Each group's tracepoints: uvloop reads and writes sockets with read(2)/write(2), HAProxy with
# recvfrom(2)/sendto(2); either may use the vectored forms.
GROUPS = {
    "reads": ("read", "readv", "recvfrom", "recvmsg"),
    "writes": ("write", "writev", "sendto", "sendmsg"),
    "polls": ("epoll_wait", "epoll_pwait"),
}
ALL = "raw_syscalls:sys_enter"
# perf gives no sign that it has attached: counting starts this long after it is started.
ATTACH_SECONDS = 0.5


def _events() -> list[str]:
    return [ALL] + [f"syscalls:sys_enter_{name}" for names in GROUPS.values() for name in names]


def unavailable() -> str | None:
    """Why the count cannot be taken here, or None."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian's linux-perf)"
    probe = subprocess.run(
        ["perf", "stat", "-x,", "-e", ",".join(_events()), "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"perf cannot count the syscall tracepoints: {probe.stderr.strip()[:200]}"
    return None


def parse(output: str) -> dict[str, int]:
    """`perf stat -x,` lines (value,unit,event,...) as counts by event name."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[0].strip().isdigit():
            counts[fields[2]] = int(fields[0])
    return counts


def per_request(counts: dict[str, int], requests: int) -> dict[str, float]:
    """Calls per request: all of them and each group."""
    figures = {"all": counts.get(ALL, 0) / requests}
    for group, names in GROUPS.items():
        total = sum(counts.get(f"syscalls:sys_enter_{name}", 0) for name in names)
        figures[group] = total / requests
    return figures


@contextlib.contextmanager
def counting(pids: list[int]) -> Iterator[dict[str, int]]:
    """perf counting the system calls of `pids` while the block runs: the counts by event are
    in the yielded dict once it has ended."""
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "perf.txt"
        command = ["perf", "stat", "-x,", "-o", str(out), "-e", ",".join(_events())]
        perf = subprocess.Popen(
            [*command, "-p", ",".join(str(pid) for pid in pids)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(ATTACH_SECONDS)
            yield counts
        finally:
            perf.send_signal(signal.SIGINT)  # perf writes its counts as it exits
            perf.wait(30)
            counts.update(parse(out.read_text()))


def count(
    pids: list[int], url: str, seconds: int, connections: int, headers: dict[str, str]
) -> tuple[dict[str, float], Load]:
    """The system calls of `pids` per request over one wrk run against `url`."""
    with counting(pids) as counts:
        load = wrk(url, seconds, connections, headers=headers)
    return per_request(counts, max(load.requests, 1)), load
