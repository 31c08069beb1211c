"""Events throughput: outbox rows → relay → RabbitMQ → notifier → SMTP sink.

Laid out as production runs it: the notifier is its own process (`python -m notifier serve`,
uvicorn on uvloop), the relay runs here (in production it lives in the users service), and the SMTP
sink is a third process. Real PostgreSQL (TEST_DATABASE_URL admin URL, throwaway databases) and
RabbitMQ (a throwaway vhost, deleted afterwards). Two measurements:

- throughput: N outbox rows written at once, then the relay started; events/s = N / (time from
  the relay's start to the last email accepted by the sink);
- latency: events written one transaction at a time at a steady pace (well under capacity);
  latency = time the sink accepted the email - time the outbox row was committed (this includes
  the relay's wake-up, the publish and confirm, the consume, two database writes and SMTP).

The CPU time each process spent during the throughput run is printed per event (from /proc).

The sink is bench.smtp_sink's minimal SMTP server (the tests' aiosmtpd would measure the harness).

Run: `uv run python -m bench.events [--events 5000] [--paced 500] [--rate 200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import uvloop
from common.db import Database, new_metadata
from common.events import Envelope, OutboxMixin
from common.outbox import OutboxRelay, add_outbox_event
from common.rabbitmq import RabbitBroker
from common.testing import free_port, fresh_database
from sqlalchemy import insert
from sqlalchemy.orm import DeclarativeBase

from bench.proc import cpu_seconds, machine_cpu_seconds
from bench.smtp_sink import SmtpSinkProtocol
from tests.integration.platform import SERVICES, Platform, platform_env, throwaway_vhost

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "notifier" / "migrations"
EVENT_ID = re.compile(rb"^X-Gatehouse-Event-Id: *([^\r\n]+)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Options:
    events: int  # outbox rows written at once for the throughput run
    paced: int  # then this many, one transaction at a time, for the latency run
    rate: float  # at this many per second


class BenchBase(DeclarativeBase):
    metadata = new_metadata()


class BenchOutbox(OutboxMixin, BenchBase):
    __tablename__ = "bench_outbox"


class TimingSink(SmtpSinkProtocol):
    """Prints `<event id> <monotonic time>` for each message accepted (CLOCK_MONOTONIC: one clock
    for every process of the machine)."""

    name = b"bench-sink"

    def accepted(self, message: bytes, recipients: list[str]) -> None:
        now = time.monotonic()
        found = EVENT_ID.search(message)
        event_id = found.group(1).decode() if found else "-"
        sys.stdout.write(f"{event_id} {now}\n")
        sys.stdout.flush()


def serve_sink(port: int) -> None:
    """The child process: the sink on 127.0.0.1:`port` until terminated."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(TimingSink, "127.0.0.1", port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


class SinkProcess:
    """The sink in a child process (`python -m bench.events --sink PORT`), read through a pipe."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted: dict[str, float] = {}
        self.duplicates = 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.events", "--sink", str(port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
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
    sink = SinkProcess(free_port())
    try:
        async with (
            fresh_database("bench_events_notifier", MIGRATIONS) as notifier_url,
            fresh_database("bench_events_outbox", MIGRATIONS) as outbox_url,
        ):
            with throwaway_vhost() as amqp_url:
                logs = ROOT / "var" / time.strftime("bench-events-%Y%m%d-%H%M%S")
                logs.mkdir(parents=True)
                ports = {service: free_port() for service in SERVICES}
                env = platform_env(
                    {"auth": "", "users": "", "notifier": notifier_url},
                    ports,
                    redis_url="",
                    amqp_url=amqp_url,
                    smtp_port=sink.port,
                    extra={"LOG_LEVEL": "WARNING"},
                )
                platform = Platform(env, ports, logs)
                platform.start("notifier")  # declares its queue before the first publish
                try:
                    processes = {
                        "relay": os.getpid(),
                        "notifier": platform.processes["notifier"].pid,
                        "sink": sink.process.pid,
                    }
                    options = Options(events, paced, rate)
                    return await relay_and_measure(outbox_url, amqp_url, processes, sink, options)
                finally:
                    platform.stop_all()
    finally:
        sink.stop()


async def relay_and_measure(
    outbox_url: str, amqp_url: str, processes: dict[str, int], sink: SinkProcess, options: Options
) -> dict[str, float]:
    """Here, the relay (users' part in production); `processes`: pids whose CPU is measured."""
    database = Database(outbox_url)
    async with database.engine.begin() as connection:
        await connection.run_sync(BenchBase.metadata.create_all)
    publisher = RabbitBroker(amqp_url)
    await publisher.start()
    relay = OutboxRelay(database, BenchOutbox, publisher)
    try:
        return await measure(database, relay, processes, sink, options)
    finally:
        await relay.stop()
        await publisher.close()
        await database.dispose()


async def measure(
    database: Database,
    relay: OutboxRelay,
    processes: dict[str, int],
    sink: SinkProcess,
    options: Options,
) -> dict[str, float]:
    events, paced, rate = options.events, options.paced, options.rate
    # Throughput: a backlog of rows, then the relay.
    rows = [BenchOutbox.for_envelope(registration()) for _ in range(events)]
    async with database.sessionmaker() as db, db.begin():
        await db.execute(insert(BenchOutbox), rows)
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    machine_before = machine_cpu_seconds()
    started = time.monotonic()
    await relay.start()
    await wait_for(sink, events, limit=600)
    elapsed = max(sink.accepted.values()) - started
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
    cpu["machine"] = machine_cpu_seconds() - machine_before
    # Latency: one registration at a time, at a steady pace.
    committed: dict[str, float] = {}
    for _ in range(paced):
        event = registration()
        async with database.sessionmaker() as db, db.begin():
            await add_outbox_event(db, BenchOutbox, event)
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
        **{f"{name}_cpu_us_per_event": seconds / events * 1e6 for name, seconds in cpu.items()},
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
    # uvloop, as the services run under uvicorn (the relay runs in users in production).
    result = uvloop.run(run(arguments.events, arguments.paced, arguments.rate))
    print(
        f"events: {result['events']:.0f} through outbox → RabbitMQ → notifier → SMTP in "
        f"{result['seconds']:.2f}s = {result['events_per_second']:.0f} events/s; "
        f"commit→email latency at {arguments.rate:.0f}/s: p50 {result['latency_p50_ms']:.1f} ms, "
        f"p99 {result['latency_p99_ms']:.1f} ms; duplicates: {result['duplicates']:.0f}"
    )
    print(cpu_line(result))


def cpu_line(result: dict[str, float]) -> str:
    """CPU time per event of each process, and of the whole machine (RabbitMQ, PostgreSQL and the
    kernel included)."""
    return "CPU per event: " + ", ".join(
        f"{name} {result[f'{name}_cpu_us_per_event']:.0f} µs"
        for name in ("relay", "notifier", "sink", "machine")
    )


if __name__ == "__main__":
    main()
