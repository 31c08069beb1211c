"""What the services of one embedded run share in-process (docs/ARCHITECTURE.md §5), and the choice
between embedded mode's broker and RabbitMQ.

This is the embedded mode: the only module that imports the in-process broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.broker import Broker, RetryPolicy
from common.inprocess_broker import InProcessBroker
from common.rabbitmq import RabbitBroker
from common.redis import EmbeddedRedis


@dataclass
class Embedded:
    redis: EmbeddedRedis = field(default_factory=EmbeddedRedis)
    broker: InProcessBroker = field(default_factory=InProcessBroker)


def make_broker(
    amqp_url: str | None,
    embedded: InProcessBroker | None = None,
    *,
    prefix: str = "",
    retry: RetryPolicy | None = None,
    prefetch: int = 32,
) -> Broker:
    """RabbitMQ when `AMQP_URL` is set, else a client of the shared in-process broker."""
    if amqp_url:
        return RabbitBroker(amqp_url, prefix=prefix, retry=retry, prefetch=prefetch)
    return (embedded or InProcessBroker(retry=retry)).client()
