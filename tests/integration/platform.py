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
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common.testing import free_port, fresh_database

SERVICES = ("auth", "users", "notifier", "gateway")
ROOT = Path(__file__).resolve().parents[2]
AMQP_BASE = "amqp://guest:guest@127.0.0.1:5672"
# The tests' limits: high enough that no test meets one by accident (every test is 127.0.0.1);
# the login limit stays low enough for a test to reach it on purpose.
TEST_LIMITS = {
    "GATEWAY_RATE_LIMIT": "1000/second",
    "GATEWAY_LOGIN_RATE_LIMIT": "50/minute",
    "GATEWAY_LOGIN_IP_RATE_LIMIT": "1000/minute",
}


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

    def gateway_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url("gateway"), timeout=30.0)

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
            # A WebAuthn relying party id is a domain, never an IP address: the passkey test
            # opens the sign-in pages at localhost (tokens still name the 127.0.0.1 issuer).
            "WEBAUTHN_RP_ID": "localhost",
            "WEBAUTHN_ORIGIN": f"http://localhost:{ports['gateway']}",
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


@contextlib.asynccontextmanager
async def running_platform(
    log_dir: Path,
    *,
    redis_url: str,
    smtp_port: int,
    services: tuple[str, ...] = SERVICES,
    amqp_url: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> AsyncIterator[Platform]:
    """`services` started as real processes on fresh databases (`notifier`'s only when it runs)
    and a throwaway vhost unless `amqp_url` says where the broker is, with `TEST_LIMITS` and then
    `extra` in their environment; all stopped afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        databases = {"notifier": "unused"}
        for service in services:
            if service != "gateway":
                databases[service] = await stack.enter_async_context(
                    fresh_database(f"it_{service}", ROOT / "services" / service / "migrations")
                )
        if amqp_url is None:
            amqp_url = stack.enter_context(throwaway_vhost())
        ports = {service: free_port() for service in SERVICES}
        env = platform_env(
            databases,
            ports,
            redis_url=redis_url,
            amqp_url=amqp_url,
            smtp_port=smtp_port,
            extra={**TEST_LIMITS, **(extra or {})},
        )
        running = Platform(env, ports, log_dir)
        try:
            running.start(*services)
            yield running
        finally:
            running.stop_all()
