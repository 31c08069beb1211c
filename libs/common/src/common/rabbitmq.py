"""The RabbitMQ broker (aio-pika); `common.embedded.make_broker` chooses it or the in-process one.

Topology, declared idempotently at start (every name behind a configurable prefix, so tests use
their own):

- `gatehouse.events`: durable topic exchange; routing key = event type.
- per consumer queue `<q>` (a durable quorum queue) bound to its routing keys, with
  `x-delivery-limit` so a message whose consumer keeps dying ends in `<q>.dead`, not in a loop;
- `<q>.retry.<ms>ms`: one durable queue per retry delay whose TTL dead-letters the message back to
  `<q>` through the default exchange (per-queue TTL, so no head-of-line blocking);
- `<q>.dead`: the dead-letter queue (quorum), holding the attempt count and the last error in
  headers.

Publishing waits for the publisher confirm, with `mandatory` set and returns raising
(`UnroutableEvent`), within a timeout. A handler failure republishes the message to the next
retry queue (with the attempt count in a header) and only then acks it, so a crash in between
redelivers rather than loses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import DeliveryError
from pamqp.commands import Basic
from pydantic import ValidationError

from common.broker import (
    ATTEMPTS_HEADER,
    CONSUMER_QUEUES,
    ERROR_HEADER,
    BrokerUnavailable,
    EventHandler,
    PermanentFailure,
    RetryPolicy,
    UnroutableEvent,
    decode_envelope,
)
from common.events import EXCHANGE, Envelope
from common.logs import describe, request_id_var

logger = logging.getLogger("gatehouse.events")

# Deliveries of one message (consumer crashes, not handler failures) before RabbitMQ dead-letters
# it; fixed because queue arguments cannot change once a queue exists.
REDELIVERY_LIMIT = 10
STOP_GRACE_SECONDS = 10.0


@dataclass
class _Consumer:
    queue: str
    routing_keys: Sequence[str]
    handler: EventHandler
    channel: AbstractChannel | None = None
    queue_object: AbstractQueue | None = None
    consumer_tag: str | None = None
    in_flight: int = 0


class RabbitBroker:
    """`Broker` over RabbitMQ with a robust connection (it reconnects and restores consumers)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        queues: Mapping[str, Sequence[str]] = CONSUMER_QUEUES,
        retry: RetryPolicy | None = None,
        publish_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        prefetch: int = 32,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.queues = dict(queues)
        self.retry = retry or RetryPolicy()
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self.prefetch = prefetch
        self.exchange_name = prefix + EXCHANGE
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[_Consumer] = []
        self._connected = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # Names -----------------------------------------------------------------------------------
    def queue_name(self, queue: str) -> str:
        return self.prefix + queue

    def dead_letter_queue(self, queue: str) -> str:
        return self.queue_name(queue) + ".dead"

    def retry_queue(self, queue: str, delay: float) -> str:
        return f"{self.queue_name(queue)}.retry.{round(delay * 1000)}ms"

    # Lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and declare the topology; if RabbitMQ is down, keep trying in the background
        (publishes raise `BrokerUnavailable` meanwhile and consumers start once connected)."""
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect_forever(), name="amqp connect")
        try:
            await asyncio.wait_for(self._connected.wait(), self.connect_timeout)
        except TimeoutError:
            logger.warning("RabbitMQ not reachable yet; connecting in the background")

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("RabbitMQ connection failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
            else:
                return

    async def _connect(self) -> None:
        # Built by hand rather than by `connect_robust`, which drops a connection whose first
        # attempt fails with its reconnect task still pending: it must be closed here, not by
        # the garbage collector on whatever loop (or none) runs then.
        connection = aio_pika.RobustConnection(
            aio_pika.connection.make_url(self.url),
            client_properties={"connection_name": f"gatehouse {self.prefix}".strip()},
        )
        try:
            await connection.connect(timeout=self.connect_timeout)
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            for queue, keys in self.queues.items():
                await self._declare_consumer_queue(channel, queue, keys)
        except BaseException:
            await connection.close()
            raise
        async with self._lock:
            self._connection = connection
            self._connected.set()
            for consumer in self._consumers:
                await self._start_consumer(consumer)

    async def _declare_consumer_queue(
        self, channel: AbstractChannel, queue: str, routing_keys: Sequence[str]
    ) -> AbstractQueue:
        name = self.queue_name(queue)
        dead = self.dead_letter_queue(queue)
        await channel.declare_queue(dead, durable=True, arguments={"x-queue-type": "quorum"})
        for delay in sorted(set(self.retry.delays)):
            await channel.declare_queue(
                self.retry_queue(queue, delay),
                durable=True,
                arguments={
                    "x-message-ttl": round(delay * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": name,
                },
            )
        main = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": REDELIVERY_LIMIT,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead,
            },
        )
        for key in routing_keys:
            await main.bind(self.exchange_name, routing_key=key)
        return main

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        for consumer in self._consumers:
            await self._stop_consumer(consumer)
        self._consumers.clear()
        if self._connection is not None:
            await self._connection.close()
        self._connection = None
        self._connected.clear()

    async def _stop_consumer(self, consumer: _Consumer) -> None:
        """Cancel delivery, let in-flight messages finish (bounded), close the channel; anything
        still unacked is redelivered by RabbitMQ."""
        channel, queue = consumer.channel, consumer.queue_object
        if channel is None or channel.is_closed:
            return
        if queue is not None and consumer.consumer_tag is not None:
            try:
                await queue.cancel(consumer.consumer_tag, timeout=self.publish_timeout)
            except Exception as exc:
                logger.warning("could not cancel consumer of %s: %s", consumer.queue, exc)
        for _ in range(int(STOP_GRACE_SECONDS / 0.05)):
            if consumer.in_flight == 0:
                break
            await asyncio.sleep(0.05)
        await channel.close()

    async def ping(self) -> None:
        if self._connection is None or not self._connection.connected.is_set():
            raise BrokerUnavailable("not connected to RabbitMQ")

    # Publishing ------------------------------------------------------------------------------
    async def publish(self, envelope: Envelope, *, request_id: str | None = None) -> None:
        if self._exchange is None or not self._connected.is_set():
            raise BrokerUnavailable("not connected to RabbitMQ")
        message = aio_pika.Message(
            envelope.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(envelope.id),
            correlation_id=request_id,
            type=envelope.type,
            timestamp=envelope.occurred_at,
        )
        await self._publish(self._exchange, message, envelope.type)

    async def _publish(
        self, exchange: AbstractExchange, message: aio_pika.Message, routing_key: str
    ) -> None:
        try:
            await exchange.publish(
                message, routing_key, mandatory=True, timeout=self.publish_timeout
            )
        except DeliveryError as exc:
            if isinstance(exc.frame, Basic.Return):
                raise UnroutableEvent(f"no queue is bound for {routing_key!r}") from exc
            raise BrokerUnavailable(f"RabbitMQ refused the message: {exc}") from exc

    # Consuming -------------------------------------------------------------------------------
    async def consume(self, queue: str, routing_keys: Sequence[str], handler: EventHandler) -> None:
        consumer = _Consumer(queue, tuple(routing_keys), handler)
        async with self._lock:
            self._consumers.append(consumer)
            if self._connected.is_set():
                await self._start_consumer(consumer)

    async def _start_consumer(self, consumer: _Consumer) -> None:
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=self.prefetch)
        main = await self._declare_consumer_queue(channel, consumer.queue, consumer.routing_keys)
        consumer.channel = channel
        consumer.queue_object = main

        async def on_message(message: AbstractIncomingMessage) -> None:
            consumer.in_flight += 1
            try:
                await self._handle(channel, consumer, message)
            finally:
                consumer.in_flight -= 1

        consumer.consumer_tag = await main.consume(on_message)

    async def _handle(
        self, channel: AbstractChannel, consumer: _Consumer, message: AbstractIncomingMessage
    ) -> None:
        previous = message.headers.get(ATTEMPTS_HEADER, 0)
        attempt = (previous if isinstance(previous, int) else 0) + 1
        try:
            envelope = decode_envelope(message.body)
        except ValidationError as exc:
            await self._dead_letter(channel, consumer.queue, message, attempt, describe(exc))
            return
        token = request_id_var.set(message.correlation_id)
        try:
            await consumer.handler(envelope)
        except PermanentFailure as exc:
            await self._dead_letter(channel, consumer.queue, message, attempt, describe(exc))
        except Exception as exc:
            if attempt >= self.retry.max_attempts:
                await self._dead_letter(channel, consumer.queue, message, attempt, describe(exc))
                return
            delay = self.retry.delay_after(attempt)
            logger.warning(
                "event %s failed on %s (attempt %d), retrying in %.3gs: %s",
                envelope.id,
                consumer.queue,
                attempt,
                delay,
                describe(exc),
            )
            target = self.retry_queue(consumer.queue, delay)
            await self._forward(channel, message, target, attempt, describe(exc))
        else:
            await message.ack()
        finally:
            request_id_var.reset(token)

    async def _dead_letter(
        self,
        channel: AbstractChannel,
        queue: str,
        message: AbstractIncomingMessage,
        attempts: int,
        reason: str,
    ) -> None:
        logger.error("event dead-lettered on %s after %d attempt(s): %s", queue, attempts, reason)
        await self._forward(channel, message, self.dead_letter_queue(queue), attempts, reason)

    async def _forward(
        self,
        channel: AbstractChannel,
        message: AbstractIncomingMessage,
        target: str,
        attempts: int,
        reason: str,
    ) -> None:
        """Republish to `target` (confirmed), then ack; on failure leave it for redelivery."""
        copy = aio_pika.Message(
            message.body,
            headers={**message.headers, ATTEMPTS_HEADER: attempts, ERROR_HEADER: reason},
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            timestamp=message.timestamp,
        )
        try:
            await self._publish(channel.default_exchange, copy, target)
        except Exception as exc:
            logger.error("could not move a message to %s (%s); requeueing it", target, exc)
            if not channel.is_closed:
                await message.nack(requeue=True)
            return
        await message.ack()

    # Test support ----------------------------------------------------------------------------
    async def delete_topology(self) -> None:
        """Delete every exchange and queue this broker declared (tests use unique prefixes)."""
        assert self._connection is not None
        channel = await self._connection.channel()
        for queue in {*self.queues, *(consumer.queue for consumer in self._consumers)}:
            names = [self.queue_name(queue), self.dead_letter_queue(queue)]
            names += [self.retry_queue(queue, delay) for delay in set(self.retry.delays)]
            for name in names:
                await channel.queue_delete(name)
        await channel.exchange_delete(self.exchange_name)
        await channel.close()
