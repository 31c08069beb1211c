"""The in-process broker of embedded mode: routing, retries with backoff, dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from common.broker import PermanentFailure, RetryPolicy, UnroutableEvent
from common.events import Envelope
from common.inprocess_broker import InProcessBroker, topic_matches
from common.testing import wait_until

from .support import INVALID_ENVELOPES, QUEUE, registered

FAST = RetryPolicy(delays=(0.01, 0.02, 0.04), max_attempts=3)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("user.registered", "user.registered", True),
        ("user.*", "user.registered", True),
        ("user.*", "user.a.b", False),
        ("user.#", "user.a.b", True),
        ("#", "user.registered", True),
        ("user.registered", "user.updated", False),
        ("*.registered", "registered", False),
    ],
)
def test_topic_matching(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


async def test_published_event_reaches_the_bound_consumer_validated() -> None:
    broker = InProcessBroker(retry=FAST)
    received: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)

    await broker.start()
    await broker.consume(QUEUE, ["user.registered"], handler)
    event = registered(email="a@example.com")
    await broker.publish(event)
    await wait_until(lambda: received)
    await broker.close()
    assert received == [event]


async def test_unroutable_publish_raises() -> None:
    broker = InProcessBroker(queues={})
    with pytest.raises(UnroutableEvent):
        await broker.publish(registered())


async def test_failing_handler_is_retried_until_it_succeeds() -> None:
    broker = InProcessBroker(retry=FAST)
    calls = 0

    async def flaky(_envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("smtp down")

    await broker.consume(QUEUE, ["user.registered"], flaky)
    await broker.publish(registered())
    await wait_until(lambda: calls == 3)
    await broker.close()
    assert broker.dead_letters(QUEUE) == []


async def test_poison_message_is_dead_lettered_and_the_queue_keeps_flowing() -> None:
    broker = InProcessBroker(retry=FAST, concurrency=1)
    handled: list[str] = []

    async def handler(envelope: Envelope) -> None:
        if envelope.data.get("poison"):
            raise RuntimeError("cannot handle this one")
        handled.append(str(envelope.id))

    await broker.consume(QUEUE, ["user.registered"], handler)
    await broker.publish(registered(poison=True))
    healthy = registered()
    await broker.publish(healthy)
    await wait_until(lambda: len(broker.dead_letters(QUEUE)) == 1)
    await broker.close()
    assert handled == [str(healthy.id)]
    [dead] = broker.dead_letters(QUEUE)
    assert dead.attempts == FAST.max_attempts
    assert "cannot handle this one" in dead.reason


async def test_permanent_failure_is_dead_lettered_at_once() -> None:
    broker = InProcessBroker(retry=FAST)
    calls = 0

    async def handler(_envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        raise PermanentFailure("550 no such mailbox")

    await broker.consume(QUEUE, ["user.registered"], handler)
    await broker.publish(registered())
    await wait_until(lambda: broker.dead_letters(QUEUE))
    await broker.close()
    assert calls == 1
    assert broker.dead_letters(QUEUE)[0].attempts == 1


@pytest.mark.parametrize("body", INVALID_ENVELOPES)
async def test_envelope_that_does_not_validate_is_dead_lettered(body: object) -> None:
    broker = InProcessBroker(retry=FAST)
    calls = 0

    async def handler(_envelope: Envelope) -> None:
        nonlocal calls
        calls += 1

    await broker.consume(QUEUE, ["user.registered"], handler)
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    broker.route("user.registered", raw)
    await wait_until(lambda: broker.dead_letters(QUEUE))
    await broker.close()
    assert calls == 0
    assert "ValidationError" in broker.dead_letters(QUEUE)[0].reason


async def test_client_close_stops_only_its_own_consumers() -> None:
    shared = InProcessBroker(retry=FAST)
    notifier, auth = shared.client(), shared.client()
    seen: list[str] = []

    async def on_registered(_envelope: Envelope) -> None:
        seen.append("notifier")

    async def on_sessions(_envelope: Envelope) -> None:
        seen.append("auth")

    await notifier.consume(QUEUE, ["user.registered"], on_registered)
    await auth.consume("auth.user-sessions", ["user.deactivated"], on_sessions)
    await notifier.close()
    await auth.publish(Envelope(type="user.deactivated", data={"user_id": str(uuid.uuid4())}))
    await wait_until(lambda: seen)
    await auth.close()
    assert seen == ["auth"]


async def test_close_lets_the_in_flight_message_finish() -> None:
    broker = InProcessBroker(retry=FAST, concurrency=1)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[bool] = []

    async def slow(_envelope: Envelope) -> None:
        started.set()
        await release.wait()
        finished.append(True)

    await broker.consume(QUEUE, ["user.registered"], slow)
    await broker.publish(registered())
    await started.wait()
    closing = asyncio.create_task(broker.close())
    await asyncio.sleep(0.01)
    release.set()
    await closing
    assert finished == [True]
