"""A gateway as its own process (`python -m gateway serve`), configured by environment only."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time

import httpx
from common.testing import free_port


class GatewayProcess:
    def __init__(self, environment: dict[str, str]) -> None:
        self.port = free_port()
        self.environment = {
            **os.environ,
            **environment,
            "GATEWAY_PORT": str(self.port),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
        self.process: asyncio.subprocess.Process | None = None
        # A file, never a pipe: a full pipe nobody reads would stall the server. Closed in stop().
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.captured = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            env=self.environment,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.log,
        )
        # A deadline, not a count of tries: on a busy machine the imports alone take seconds.
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=self.url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the gateway process exited: {self.output()}")
                try:
                    if (await client.get("/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("the gateway process did not become ready")

    async def stop(self) -> int | None:
        """SIGTERM, as an orchestrator sends it; the exit status (uvicorn re-raises the signal
        after its graceful shutdown, so a clean stop is -SIGTERM). Closes the captured output."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 25)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.output()
        self.log.close()
        return self.process.returncode if self.process is not None else None

    def output(self) -> str:
        """The end of what the process wrote to stderr."""
        if not self.log.closed:
            self.log.seek(0)
            self.captured = self.log.read().decode("utf-8", "replace")[-4000:]
        return self.captured
