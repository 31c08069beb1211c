"""The platform as production runs it: four processes on loopback ports, real PostgreSQL
(fresh databases), Redis (DB 3, flushed), RabbitMQ (a throwaway vhost) and an SMTP sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from common.testing import SmtpSink, ThrowawayRedis, redis_url

from .platform import Platform, running_platform
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
    async with running_platform(
        tmp_path_factory.mktemp("platform"),
        redis_url=REDIS_URL,
        smtp_port=smtp_sink.port,
        # Short, so test_step_up can outwait a login; a guarded change (email, deactivation,
        # roles) needs a login at most this many seconds old.
        extra={"STEP_UP_MAX_AGE": str(STEP_UP_MAX_AGE)},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def redis_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedis]:
    """A redis-server of the module's own, for a platform that stops it or must not share the
    session platform's keys."""
    node = ThrowawayRedis(tmp_path_factory.mktemp("redis"))
    node.start()
    yield node
    node.stop()


@pytest.fixture
async def gateway(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.gateway_client() as client:
        yield client
