"""Redis clients: the real server when `REDIS_URL` is set, else an in-process substitute.

The embedded substitute (fakeredis, Lua included) speaks the same client API, so the gateway's Lua
script and auth's revocation markers run on one code path in both modes. Embedded mode runs every
service in one process, and they share one `EmbeddedRedis` server object.
"""

from __future__ import annotations

from fakeredis import FakeAsyncRedis, FakeServer
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


class EmbeddedRedis:
    """One in-process store shared by the services of an embedded run."""

    def __init__(self) -> None:
        self.server = FakeServer()

    def client(self) -> Redis:
        client: Redis = FakeAsyncRedis(server=self.server, decode_responses=False)
        return client


def make_redis(
    url: str | None, embedded: EmbeddedRedis | None = None, *, retries: int = 0
) -> Redis:
    """`retries`: how many times a command that met a broken connection (ConnectionError,
    TimeoutError) is sent again, at once, on the same connection reconnected. A Redis that
    restarted leaves every pooled connection stale and the first command on each fails; only a
    caller whose commands are idempotent should ask for this (auth's markers are)."""
    if url:
        return Redis.from_url(
            url,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            health_check_interval=30,
            max_connections=256,
            retry=Retry(NoBackoff(), retries),
        )
    return (embedded or EmbeddedRedis()).client()
