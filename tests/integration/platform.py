"""Start the four services as real processes on loopback ports, as production runs them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("auth", "users", "notifier", "gateway")
ROOT = Path(__file__).resolve().parents[2]
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672"


@dataclass
class Platform:
    env: dict[str, str]
    ports: dict[str, int]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, *services: str, wait: bool = True) -> None:
        for service in services or SERVICES:
            with (self.log_dir / f"{service}.log").open("ab") as log:
                self.processes[service] = subprocess.Popen(
                    [sys.executable, "-m", service, "serve"],
                    env=self.env,
                    cwd=self.log_dir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if wait:
                self.wait_ready(service)

    def wait_ready(self, service: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        process = self.processes[service]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{service} exited with {process.returncode}:\n{self.log(service)}"
                )
            try:
                if httpx.get(self.url(service) + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{service} did not become healthy:\n{self.log(service)}")

    def stop(self, service: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        process = self.processes.pop(service)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop_all(self) -> None:
        for service in reversed(list(self.processes)):
            self.stop(service)

    def log(self, service: str) -> str:
        path = self.log_dir / f"{service}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def platform_env(
    databases: Mapping[str, str],
    ports: Mapping[str, int],
    *,
    redis_url: str,
    amqp_url: str,
    smtp_port: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(
        {
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "INFO",
            "ISSUER": f"http://127.0.0.1:{ports['gateway']}",
            "AUDIENCE": "gatehouse-api",
            "AUTH_URL": f"http://127.0.0.1:{ports['auth']}",
            "USERS_URL": f"http://127.0.0.1:{ports['users']}",
            "GATEWAY_PORT": str(ports["gateway"]),
            "AUTH_PORT": str(ports["auth"]),
            "USERS_PORT": str(ports["users"]),
            "NOTIFIER_PORT": str(ports["notifier"]),
            "AUTH_DATABASE_URL": databases["auth"],
            "USERS_DATABASE_URL": databases["users"],
            "NOTIFIER_DATABASE_URL": databases["notifier"],
            "REDIS_URL": redis_url,
            "AMQP_URL": amqp_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "SMTP_FROM": "Gatehouse <no-reply@gatehouse.test>",
            "BCRYPT_ROUNDS": "12",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@contextlib.contextmanager
def throwaway_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of our own, so queues never meet another run's; `/` when rabbitmqctl is
    not usable here (queue names then are the production ones)."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    name = f"gatehouse-it-{uuid.uuid4().hex[:8]}"

    def ctl(*args: str) -> bool:
        if rabbitmqctl is None:
            return False
        result = subprocess.run([rabbitmqctl, *args], capture_output=True, timeout=60, check=False)
        return result.returncode == 0

    if ctl("add_vhost", name) and ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*"):
        try:
            yield f"{AMQP_BASE}/{name}"
        finally:
            ctl("delete_vhost", name)
    else:
        yield f"{AMQP_BASE}/"
