"""A process of the bench's own (a reference proxy, a floor app) listening on a loopback port."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.proc import stop_process, with_children


@dataclass
class Listener:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The process and its children (nginx's worker), whose CPU is this listener's."""
        return with_children(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)


def start_listener(
    name: str,
    command: list[str],
    port: int,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 240.0,  # a cold Python start on a busy shared machine can take a minute
) -> Listener:
    """Start `command` (output to `log`) and wait until `/health` on `port` answers at all."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
    listener = Listener(name, process, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(f"{listener.url}/health", timeout=1.0)
            return listener
        except httpx.HTTPError:
            time.sleep(0.1)
    listener.stop()
    raise RuntimeError(f"{name} did not answer on port {port}:\n{log.read_text()}")
