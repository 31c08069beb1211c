"""The bench's system-call count (bench/syscalls): perf's counts read back and shared out per
request, and a real count of a process that makes a known number of calls."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import syscalls

PERF_OUTPUT = """# started on Sun Dec  6 21:28:54 2026

118,,raw_syscalls:sys_enter,1038175,100.00,,
5,,syscalls:sys_enter_read,1038175,100.00,,
7,,syscalls:sys_enter_recvfrom,1038175,100.00,,
0,,syscalls:sys_enter_sendto,1038175,100.00,,
<not counted>,,syscalls:sys_enter_writev,0,0.00,,
"""


def test_perf_lines_are_read_as_counts_by_event() -> None:
    assert syscalls.parse(PERF_OUTPUT) == {
        "raw_syscalls:sys_enter": 118,
        "syscalls:sys_enter_read": 5,
        "syscalls:sys_enter_recvfrom": 7,
        "syscalls:sys_enter_sendto": 0,
    }


def test_each_group_sums_its_calls_per_request() -> None:
    figures = syscalls.per_request(syscalls.parse(PERF_OUTPUT), requests=4)
    assert figures == {"all": 29.5, "reads": 3.0, "writes": 0.0, "polls": 0.0}


@pytest.mark.skipif(syscalls.unavailable() is not None, reason="perf cannot count here")
def test_a_process_writing_a_known_number_of_times_is_counted() -> None:
    """1000 writes to /dev/null, made after perf attached: at least that many, and not far more
    (the interpreter's own calls while it waits and exits)."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "sys.stdin.readline()\n"
            "fd = os.open(os.devnull, os.O_WRONLY)\n"
            "for _ in range(1000): os.write(fd, b'x')\n",
        ],
        stdin=subprocess.PIPE,
    )
    assert child.stdin is not None
    with syscalls.counting([child.pid]) as counts:
        child.stdin.write(b"go\n")
        child.stdin.close()
        child.wait(30)
    figures = syscalls.per_request(counts, requests=1000)
    assert 1.0 <= figures["writes"] < 1.1
