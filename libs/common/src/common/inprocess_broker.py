"""The in-process broker of embedded mode: nothing else imports it (the contract both brokers
share is `common.broker`).

It keeps RabbitMQ's semantics where the services can see them: topic routing from the exchange to
bound queues, an unroutable publish raising, the envelope validated on the consumer's side,
retries with growing delays, and a dead-letter list per queue after the last attempt, at once on
`PermanentFailure` or on an envelope that does not validate (an unknown version, say). It holds
no messages across restarts: embedded mode is for development only (docs/ARCHITECTURE.md §5).

Embedded mode runs every service in one process; they share one `InProcessBroker` through
`common.embedded.Embedded` and each takes its own `client()`, whose `close()` stops only its own
consumers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from common.broker import (
    CONSUMER_QUEUES,
    EventHandler,
    PermanentFailure,
    RetryPolicy,
    UnroutableEvent,
    decode_envelope,
)
from common.events import Envelope
from common.logs import describe, request_id_var

logger = logging.getLogger("gatehouse.events")


@dataclass(frozen=True)
class DeadLetter:
    body: bytes
    attempts: int
    reason: str


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""

    def match(pattern_words: list[str], key_words: list[str]) -> bool:
        if not pattern_words:
            return not key_words
        head, rest = pattern_words[0], pattern_words[1:]
        if head == "#":
            return any(match(rest, key_words[i:]) for i in range(len(key_words) + 1))
        if not key_words:
            return False
        return (head in ("*", key_words[0])) and match(rest, key_words[1:])

    return match(pattern.split("."), routing_key.split("."))


@dataclass
class _Message:
    body: bytes
    attempts: int = 0  # failed attempts so far
    request_id: str | None = None


@dataclass
class _Queue:
    bindings: set[str] = field(default_factory=set)
    messages: asyncio.Queue[_Message] = field(default_factory=asyncio.Queue)
    dead: list[DeadLetter] = field(default_factory=list)


class InProcessBroker:
    """The shared in-process exchange, queues and dead letters. Itself usable as a `Broker`."""

    def __init__(
        self,
        *,
        queues: Mapping[str, Sequence[str]] = CONSUMER_QUEUES,
        retry: RetryPolicy | None = None,
        concurrency: int = 4,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self._queues: dict[str, _Queue] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        for name, keys in queues.items():
            self.declare(name, keys)
        self._own_client = InProcessBrokerClient(self)

    def client(self) -> InProcessBrokerClient:
        return InProcessBrokerClient(self)

    def declare(self, queue: str, routing_keys: Sequence[str]) -> None:
        self._queues.setdefault(queue, _Queue()).bindings.update(routing_keys)

    def bindings(self, queue: str) -> frozenset[str]:
        """The routing keys bound to `queue` (none when it is not declared)."""
        return frozenset(self._queues[queue].bindings) if queue in self._queues else frozenset()

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        return list(self._queues[queue].dead) if queue in self._queues else []

    def depth(self, queue: str) -> int:
        return self._queues[queue].messages.qsize() if queue in self._queues else 0

    def route(self, routing_key: str, body: bytes, request_id: str | None = None) -> None:
        targets = [
            queue
            for queue in self._queues.values()
            if any(topic_matches(pattern, routing_key) for pattern in queue.bindings)
        ]
        if not targets:
            raise UnroutableEvent(f"no queue is bound for {routing_key!r}")
        for queue in targets:
            queue.messages.put_nowait(_Message(body, request_id=request_id))

    async def handle(self, queue_name: str, message: _Message, handler: EventHandler) -> None:
        """Run `handler` on one message: done, retried later, or dead-lettered."""
        queue = self._queues[queue_name]
        attempt = message.attempts + 1
        try:
            envelope = decode_envelope(message.body)
        except ValidationError as exc:
            self._dead_letter(queue_name, queue, message, attempt, describe(exc))
            return
        token = request_id_var.set(message.request_id)
        try:
            await handler(envelope)
        except PermanentFailure as exc:
            self._dead_letter(queue_name, queue, message, attempt, describe(exc))
        except Exception as exc:
            if attempt >= self.retry.max_attempts:
                self._dead_letter(queue_name, queue, message, attempt, describe(exc))
                return
            delay = self.retry.delay_after(attempt)
            logger.warning(
                "event %s failed on %s (attempt %d), retrying in %.3gs: %s",
                envelope.id,
                queue_name,
                attempt,
                delay,
                describe(exc),
            )
            self._later(delay, queue, _Message(message.body, attempt, message.request_id))
        finally:
            request_id_var.reset(token)

    def _later(self, delay: float, queue: _Queue, message: _Message) -> None:
        loop = asyncio.get_running_loop()

        def requeue() -> None:
            self._timers.discard(timer)
            queue.messages.put_nowait(message)

        timer = loop.call_later(delay, requeue)
        self._timers.add(timer)

    def _dead_letter(
        self, name: str, queue: _Queue, message: _Message, attempts: int, reason: str
    ) -> None:
        logger.error("event dead-lettered on %s after %d attempt(s): %s", name, attempts, reason)
        queue.dead.append(DeadLetter(message.body, attempts, reason))

    def queue(self, name: str) -> asyncio.Queue[_Message]:
        return self._queues[name].messages

    # The Broker interface, for callers that use the shared broker directly.
    async def start(self) -> None:
        await self._own_client.start()

    async def publish(self, envelope: Envelope, *, request_id: str | None = None) -> None:
        await self._own_client.publish(envelope, request_id=request_id)

    async def consume(self, queue: str, routing_keys: Sequence[str], handler: EventHandler) -> None:
        await self._own_client.consume(queue, routing_keys, handler)

    async def ping(self) -> None:
        await self._own_client.ping()

    async def close(self) -> None:
        await self._own_client.close()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()


class _Worker:
    def __init__(self, broker: InProcessBroker, queue: str, handler: EventHandler) -> None:
        self.broker = broker
        self.queue = queue
        self.handler = handler
        self.busy = False
        self.stopping = False
        self.task = asyncio.create_task(self._run(), name=f"consume {queue}")

    async def _run(self) -> None:
        messages = self.broker.queue(self.queue)
        while not self.stopping:
            message = await messages.get()
            self.busy = True
            try:
                await self.broker.handle(self.queue, message, self.handler)
            finally:
                self.busy = False

    async def stop(self, grace_seconds: float) -> None:
        """Let an in-flight message finish (within the grace period), then stop."""
        self.stopping = True
        if self.busy:
            done, _ = await asyncio.wait({self.task}, timeout=grace_seconds)
            if done:
                return
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class InProcessBrokerClient:
    """One service's handle on the shared in-process broker (implements `Broker`)."""

    STOP_GRACE_SECONDS = 10.0

    def __init__(self, broker: InProcessBroker) -> None:
        self.broker = broker
        self._workers: list[_Worker] = []

    async def start(self) -> None:
        return None

    async def publish(self, envelope: Envelope, *, request_id: str | None = None) -> None:
        self.broker.route(envelope.type, envelope.model_dump_json().encode(), request_id)

    async def consume(self, queue: str, routing_keys: Sequence[str], handler: EventHandler) -> None:
        self.broker.declare(queue, routing_keys)
        self._workers.extend(
            _Worker(self.broker, queue, handler) for _ in range(self.broker.concurrency)
        )

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        workers, self._workers = self._workers, []
        await asyncio.gather(*(worker.stop(self.STOP_GRACE_SECONDS) for worker in workers))
