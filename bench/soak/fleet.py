"""The service processes: one or more replicas of each, by their Popen handles only."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common.testing import free_port

from bench.soak.infra import rss_mb

PORT_VARIABLE = {
    "auth": "AUTH_PORT",
    "users": "USERS_PORT",
    "notifier": "NOTIFIER_PORT",
    "gateway": "GATEWAY_PORT",
}


@dataclass
class Replica:
    service: str
    index: int  # 1-based
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    exits: list[tuple[str, int]] = field(default_factory=list)  # (how it was stopped, code)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def label(self) -> str:
        """The name of this incarnation (a restarted process is a new series of RSS samples)."""
        return self.name if self.incarnation <= 1 else f"{self.name}#{self.incarnation}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class Fleet:
    def __init__(self, env: dict[str, str], log_dir: Path, replicas: int) -> None:
        self.env = env
        self.log_dir = log_dir
        self.replicas = {
            service: [Replica(service, index + 1) for index in range(replicas)]
            for service in PORT_VARIABLE
        }

    def all(self) -> list[Replica]:
        return [replica for group in self.replicas.values() for replica in group]

    def spawn(self, replica: Replica) -> None:
        env = {**self.env, PORT_VARIABLE[replica.service]: str(replica.port)}
        with (self.log_dir / f"{replica.name}.log").open("ab") as log:
            log.write(f"\n=== soak: starting {replica.label} {time.strftime('%X')} ===\n".encode())
            log.flush()
            replica.process = subprocess.Popen(
                [sys.executable, "-m", replica.service, "serve"],
                env=env,
                cwd=self.log_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        replica.incarnation += 1

    async def wait_ready(self, replica: Replica, limit: float = 240.0) -> None:
        """Until `/ready` answers 200 (a degraded dependency included); on a busy shared machine
        the imports alone may take a minute."""
        deadline = time.monotonic() + limit
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                process = replica.process
                if process is None or process.poll() is not None:
                    code = process.returncode if process is not None else None
                    raise RuntimeError(f"{replica.name} exited with {code}; see its log")
                try:
                    if (await client.get(replica.url + "/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{replica.name} did not become ready in {limit:.0f}s")

    async def start(self, replica: Replica) -> None:
        self.spawn(replica)
        await self.wait_ready(replica)

    async def stop(self, replica: Replica, sig: int = signal.SIGTERM, grace: float = 40) -> int:
        """Signal the process and wait for it to exit; its exit code (negative: the signal)."""
        process = replica.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
            try:
                await asyncio.to_thread(process.wait, grace)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        replica.exits.append((signal.Signals(sig).name, process.returncode))
        replica.process = None
        return process.returncode

    async def terminate(
        self, replica: Replica, process: subprocess.Popen[bytes] | None, grace: float = 40
    ) -> int:
        """SIGTERM an earlier process of `replica` (one a newer process has replaced) and wait."""
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, grace)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        replica.exits.append(("SIGTERM", process.returncode))
        return process.returncode

    def rss(self) -> dict[str, tuple[int, float]]:
        """`{label: (pid, MB)}` of every running replica."""
        readings: dict[str, tuple[int, float]] = {}
        for replica in self.all():
            if replica.pid is not None and (mb := rss_mb(replica.pid)) is not None:
                readings[replica.label] = (replica.pid, mb)
        return readings

    async def stop_all(self) -> None:
        for service in reversed(list(self.replicas)):
            for replica in self.replicas[service]:
                await self.stop(replica)
