"""The RabbitMQ broker against the real server (127.0.0.1:5672), every name under a prefix unique
to this test run and deleted afterwards."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from common.broker import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    BrokerUnavailable,
    PermanentFailure,
    RetryPolicy,
    UnroutableEvent,
)
from common.embedded import make_broker
from common.events import Envelope
from common.logs import request_id_var
from common.rabbitmq import RabbitBroker
from common.testing import wait_until

from .support import INVALID_ENVELOPES, QUEUE, registered

AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
FAST = RetryPolicy(delays=(0.05, 0.1, 0.2), max_attempts=3)


@pytest.fixture
async def broker() -> AsyncIterator[RabbitBroker]:
    broker = RabbitBroker(AMQP_URL, prefix=f"test-{uuid.uuid4().hex[:10]}.", retry=FAST)
    await broker.start()
    yield broker
    await broker.delete_topology()
    await broker.close()


async def dead_letters(
    broker: RabbitBroker, queue: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        dead = await channel.get_queue(broker.dead_letter_queue(queue), ensure=True)
        messages = []
        while (message := await dead.get(fail=False)) is not None:
            messages.append(message)
            await message.ack()
        return messages
    finally:
        await connection.close()


async def wait_for_dead_letters(
    broker: RabbitBroker, queue: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    dead: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with asyncio.timeout(10):
        while not dead:
            dead = await dead_letters(broker, queue)
            if not dead:
                await asyncio.sleep(0.02)
    return dead


async def test_published_event_reaches_the_consumer(broker: RabbitBroker) -> None:
    received: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)

    await broker.consume(QUEUE, ["user.registered"], handler)
    event = registered(email="a@example.com")
    await broker.publish(event)
    await wait_until(lambda: received)
    assert received == [event]


async def test_the_request_id_travels_with_the_event(broker: RabbitBroker) -> None:
    seen: list[str | None] = []

    async def handler(_envelope: Envelope) -> None:
        seen.append(request_id_var.get())

    await broker.consume(QUEUE, ["user.registered"], handler)
    await broker.publish(registered(), request_id="req-0123456789")
    await broker.publish(registered())
    await wait_until(lambda: len(seen) == 2)
    assert sorted(seen, key=str) == [None, "req-0123456789"]
    assert request_id_var.get() is None  # set only while the handler runs


async def test_topology_declaration_is_idempotent(broker: RabbitBroker) -> None:
    again = RabbitBroker(AMQP_URL, prefix=broker.prefix, retry=FAST)
    await again.start()
    await again.ping()
    await again.publish(registered())
    await again.close()


async def test_ping_answers_when_connected(broker: RabbitBroker) -> None:
    await broker.ping()


async def test_unroutable_publish_raises() -> None:
    broker = RabbitBroker(AMQP_URL, prefix=f"test-{uuid.uuid4().hex[:10]}.", queues={})
    await broker.start()
    try:
        with pytest.raises(UnroutableEvent):
            await broker.publish(registered())
    finally:
        await broker.delete_topology()
        await broker.close()


async def test_publish_without_a_reachable_broker_raises_unavailable() -> None:
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:1/", connect_timeout=0.2)
    await broker.start()
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.publish(registered())
        with pytest.raises(BrokerUnavailable):
            await broker.ping()
    finally:
        await broker.close()


async def test_failed_connection_attempts_leave_nothing_behind() -> None:
    """A refused connect must close its half-made robust connection: left to the garbage
    collector, it schedules `close()` on whatever loop runs then (or none: "coroutine never
    awaited") and its reconnect task dies pending."""
    # Only this test's tasks count: the suites share one event loop, and another suite's
    # long-lived tasks may still be pending in it.
    earlier = asyncio.all_tasks()
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:1/", connect_timeout=0.2)
    await broker.start()  # the first attempt fails; the next one is pending in the background
    await asyncio.sleep(0.7)  # a second attempt fails too
    await broker.close()
    gc.collect()
    leftovers = [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task() and task not in earlier and not task.done()
    ]
    assert leftovers == []
    assert not [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, aio_pika.RobustConnection) and not obj.is_closed
    ]


async def test_failed_handler_is_retried_through_the_delay_queues(broker: RabbitBroker) -> None:
    attempts: list[int] = []

    async def flaky(_envelope: Envelope) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise ConnectionError("smtp down")

    await broker.consume(QUEUE, ["user.registered"], flaky)
    await broker.publish(registered())
    await wait_until(lambda: len(attempts) == 3)
    assert await dead_letters(broker, QUEUE) == []


async def test_poison_message_is_dead_lettered_and_the_queue_keeps_flowing(
    broker: RabbitBroker,
) -> None:
    handled: list[uuid.UUID] = []

    async def handler(envelope: Envelope) -> None:
        if envelope.data.get("poison"):
            raise RuntimeError("cannot handle this one")
        handled.append(envelope.id)

    await broker.consume(QUEUE, ["user.registered"], handler)
    poison = registered(poison=True)
    await broker.publish(poison)
    healthy = [registered() for _ in range(5)]
    for event in healthy:
        await broker.publish(event)
    await wait_until(lambda: len(handled) == 5)
    dead = await wait_for_dead_letters(broker, QUEUE)
    assert sorted(map(str, handled)) == sorted(str(event.id) for event in healthy)
    [message] = dead
    assert message.message_id == str(poison.id)
    assert message.headers[ATTEMPTS_HEADER] == FAST.max_attempts
    assert "cannot handle this one" in str(message.headers[ERROR_HEADER])


async def test_permanent_failure_is_dead_lettered_at_once(broker: RabbitBroker) -> None:
    calls = 0

    async def handler(_envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        raise PermanentFailure("550 no such mailbox")

    await broker.consume(QUEUE, ["user.registered"], handler)
    await broker.publish(registered())
    dead = await wait_for_dead_letters(broker, QUEUE)
    assert calls == 1
    assert dead[0].headers[ATTEMPTS_HEADER] == 1


@pytest.mark.parametrize("body", INVALID_ENVELOPES)
async def test_envelope_that_does_not_validate_is_dead_lettered(
    broker: RabbitBroker, body: object
) -> None:
    calls = 0

    async def handler(_envelope: Envelope) -> None:
        nonlocal calls
        calls += 1

    await broker.consume(QUEUE, ["user.registered"], handler)
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await channel.get_exchange(broker.exchange_name)
    await exchange.publish(aio_pika.Message(raw), routing_key="user.registered")
    await connection.close()
    dead = await wait_for_dead_letters(broker, QUEUE)
    assert calls == 0
    assert "ValidationError" in str(dead[0].headers[ERROR_HEADER])


def test_make_broker_picks_rabbitmq_for_an_amqp_url() -> None:
    assert isinstance(make_broker(AMQP_URL), RabbitBroker)
    assert not isinstance(make_broker(None), RabbitBroker)
