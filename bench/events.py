"""Events throughput: outbox rows → relay → RabbitMQ → notifier → SMTP sink (aiosmtpd).

Real PostgreSQL (TEST_DATABASE_URL admin URL, a throwaway database) and RabbitMQ (AMQP_URL or
127.0.0.1:5672, names under a unique prefix, deleted afterwards). Two measurements:

- throughput: N outbox rows written at once, then the relay started; events/s = N / (time from
  the relay's start to the last email accepted by the sink);
- latency: events written one transaction at a time at a steady pace (well under capacity);
  latency = time the sink accepted the email - time the outbox row was committed (this includes
  the relay's wake-up, the publish and confirm, the consume, two database writes and SMTP).

Run: `uv run python -m bench.events [--events 5000] [--paced 500] [--rate 200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from common.db import Database, new_metadata
from common.events import Envelope, OutboxMixin
from common.outbox import OutboxRelay, add_outbox_event
from common.rabbitmq import RabbitBroker
from common.testing import fresh_database
from notifier.main import create_app
from notifier.settings import NotifierSettings
from sqlalchemy import insert
from sqlalchemy.orm import DeclarativeBase

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "notifier" / "migrations"
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class BenchBase(DeclarativeBase):
    metadata = new_metadata()


class BenchOutbox(OutboxMixin, BenchBase):
    __tablename__ = "bench_outbox"


class Sink:
    """Records when each event's email was accepted (CLOCK_MONOTONIC: one clock for every
    process of the machine)."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        self.parser = BytesHeaderParser()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        now = time.monotonic()
        event_id = str(self.parser.parsebytes(envelope.content)["X-Gatehouse-Event-Id"])
        with self.lock:
            if event_id in self.accepted:
                self.duplicates += 1
            else:
                self.accepted[event_id] = now
        return "250 OK"


class SinkProcess:
    """`Sink` in a child process (`python -m bench.events --sink PORT`), read through a pipe."""

    def __init__(self, port: int) -> None:
        self.accepted: dict[str, float] = {}
        self.duplicates = 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.events", "--sink", str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event_id, _, stamp = line.strip().partition(" ")
            if event_id in self.accepted:
                self.duplicates += 1
            else:
                self.accepted[event_id] = float(stamp)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def serve_sink(port: int) -> None:
    """The child: an aiosmtpd server printing `<event id> <monotonic time>` per email."""

    class Printer(Sink):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            answer = await super().handle_DATA(server, session, envelope)
            event_id = str(self.parser.parsebytes(envelope.content)["X-Gatehouse-Event-Id"])
            print(event_id, self.accepted.get(event_id, time.monotonic()), flush=True)
            return answer

    controller = Controller(Printer(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


def registration() -> Envelope:
    return Envelope(
        type="user.registered",
        data={
            "user_id": str(uuid.uuid4()),
            "email": f"bench-{uuid.uuid4().hex[:10]}@example.com",
            "username": "bench_user",
            "full_name": "Bench User",
        },
    )


async def wait_for(sink: SinkProcess, count: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while len(sink.accepted) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(sink.accepted)} of {count} emails arrived")
        await asyncio.sleep(0.005)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(events: int, paced: int, rate: float) -> dict[str, float]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    # The SMTP server runs in a process of its own, as a real one would: sharing this process's
    # GIL would bill every SMTP round trip a thread switch and measure the harness instead.
    sink = SinkProcess(port)
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    try:
        async with fresh_database("bench", MIGRATIONS) as url:
            database = Database(url)
            async with database.engine.begin() as connection:
                await connection.run_sync(BenchBase.metadata.create_all)
            settings = NotifierSettings.model_validate(
                {"notifier_database_url": url, "smtp_host": "127.0.0.1", "smtp_port": port}
            )
            consumer = RabbitBroker(AMQP_URL, prefix=prefix, prefetch=settings.notifier_concurrency)
            # One process hosts both sides here; a generous confirm timeout keeps the relay from
            # republishing batches whose confirms wait behind the notifier's work.
            publisher = RabbitBroker(AMQP_URL, prefix=prefix, publish_timeout=30.0)
            app = create_app(settings, broker=consumer)
            relay = OutboxRelay(database, BenchOutbox, publisher)
            async with app.router.lifespan_context(app):
                await publisher.start()
                try:
                    result = await measure(database, relay, sink, events, paced, rate)
                finally:
                    await relay.stop()
                    await publisher.delete_topology()
                    await publisher.close()
            await database.dispose()
    finally:
        sink.stop()
    return result


async def measure(
    database: Database, relay: OutboxRelay, sink: SinkProcess, events: int, paced: int, rate: float
) -> dict[str, float]:
    # Throughput: a backlog of rows, then the relay.
    rows = [BenchOutbox.for_envelope(registration()) for _ in range(events)]
    async with database.sessionmaker() as session, session.begin():
        await session.execute(insert(BenchOutbox), rows)
    started = time.monotonic()
    await relay.start()
    await wait_for(sink, events, limit=600)
    elapsed = max(sink.accepted.values()) - started
    # Latency: one registration at a time, at a steady pace.
    committed: dict[str, float] = {}
    for _ in range(paced):
        event = registration()
        async with database.sessionmaker() as session, session.begin():
            await add_outbox_event(session, BenchOutbox, event)
        committed[str(event.id)] = time.monotonic()
        await asyncio.sleep(1 / rate)
    await wait_for(sink, events + paced, limit=120)
    await asyncio.sleep(0.5)
    latencies = [(sink.accepted[key] - value) * 1000 for key, value in committed.items()]
    return {
        "events": events,
        "seconds": elapsed,
        "events_per_second": events / elapsed,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p99_ms": percentile(latencies, 0.99),
        "duplicates": sink.duplicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--paced", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.sink:
        serve_sink(arguments.sink)
        return
    result = asyncio.run(run(arguments.events, arguments.paced, arguments.rate))
    print(
        f"events: {result['events']:.0f} through outbox → RabbitMQ → notifier → SMTP in "
        f"{result['seconds']:.2f}s = {result['events_per_second']:.0f} events/s; "
        f"commit→email latency at {arguments.rate:.0f}/s: p50 {result['latency_p50_ms']:.1f} ms, "
        f"p99 {result['latency_p99_ms']:.1f} ms; duplicates: {result['duplicates']:.0f}"
    )


if __name__ == "__main__":
    main()
