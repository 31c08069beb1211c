"""The platform as production runs it: four processes on loopback ports, real PostgreSQL
(fresh databases), Redis (DB 3, flushed), RabbitMQ (a throwaway vhost) and an SMTP sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from common.testing import SmtpSink, free_port, fresh_database, redis_url

from .platform import ROOT, SERVICES, Platform, platform_env, throwaway_vhost
from .support import STEP_UP_MAX_AGE

REDIS_URL = redis_url(3)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
async def platform(
    smtp_sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    # Empty, as a fresh Redis is: auth restores the markers and writes the revocation epoch at
    # start (the gateway refuses tokens until then).
    redis.Redis.from_url(REDIS_URL).flushdb()
    async with (
        fresh_database("it_auth", ROOT / "services/auth/migrations") as auth_db,
        fresh_database("it_users", ROOT / "services/users/migrations") as users_db,
        fresh_database("it_notifier", ROOT / "services/notifier/migrations") as notifier_db,
    ):
        with throwaway_vhost() as amqp_url:
            ports = {service: free_port() for service in SERVICES}
            databases = {"auth": auth_db, "users": users_db, "notifier": notifier_db}
            env = platform_env(
                databases,
                ports,
                redis_url=REDIS_URL,
                amqp_url=amqp_url,
                smtp_port=smtp_sink.port,
                extra={
                    "GATEWAY_RATE_LIMIT": "1000/second",
                    "GATEWAY_LOGIN_RATE_LIMIT": "50/minute",
                    "GATEWAY_LOGIN_IP_RATE_LIMIT": "1000/minute",  # every test is 127.0.0.1
                    # Short, so test_step_up can outwait a login; a guarded change (email,
                    # deactivation, roles) needs a login at most this many seconds old.
                    "STEP_UP_MAX_AGE": str(STEP_UP_MAX_AGE),
                },
            )
            running = Platform(env, ports, tmp_path_factory.mktemp("platform"))
            try:
                running.start()
                yield running
            finally:
                running.stop_all()


@pytest.fixture
async def gateway(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.url("gateway"), timeout=30.0) as client:
        yield client
