"""The event broker interface shared by publishers (users' outbox relay) and consumers.

Two implementations sit behind it: RabbitMQ through aio-pika (real infrastructure) and an
in-process broker for embedded mode. The events issue implements both; this is the contract.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from common.events import Envelope

EventHandler = Callable[[Envelope], Awaitable[None]]


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the message goes to the dead-letter queue."""


class Broker(Protocol):
    async def start(self) -> None:
        """Connect and declare the topology (idempotent)."""

    async def publish(self, envelope: Envelope, *, request_id: str | None = None) -> None:
        """Publish to `gatehouse.events` with routing key `envelope.type`; return once confirmed
        (or raise after the broker's publish timeout). `request_id` travels beside the envelope
        (AMQP `correlation_id`) and is the consumer's log request id while it handles it."""

    async def consume(self, queue: str, routing_keys: Sequence[str], handler: EventHandler) -> None:
        """Start consuming `queue` bound to `routing_keys`. The message is acked when `handler`
        returns; when it raises it is retried with backoff, and dead-lettered after the last
        attempt or at once on `PermanentFailure` or an envelope that does not validate."""

    async def ping(self) -> None:
        """Raise when the broker cannot be reached (readiness)."""

    async def close(self) -> None:
        """Stop consumers (after their in-flight message) and close the connection."""
