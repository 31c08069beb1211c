"""The outbox relay: publishes a service's outbox rows to the broker, in order, at least once.

A service writes an outbox row in the same transaction as the change it describes
(`add_outbox_event`). The relay takes pending rows in `seq` order, publishes them (each publish
returns after the broker's confirm) and marks them sent in the same transaction that locked them;
a crash before that commit republishes them, which consumers absorb (they are idempotent on the
event id). On PostgreSQL rows are taken with `FOR UPDATE SKIP LOCKED`, so several replicas never
publish the same row; on SQLite (embedded, one process) a plain select.

Wake-up: `add_outbox_event` sends `NOTIFY gatehouse_outbox` (delivered at commit) that the relay
LISTENs for on PostgreSQL; it still polls, every `listen_poll_interval` while listening (a missed
notification, rows written without `add_outbox_event`) and every `poll_interval` otherwise (SQLite,
or the LISTEN connection is down). While the broker is down it backs off (up to `max_backoff`).
Sent rows older than `retention` are deleted; a row whose event carries a link token
(`SECRET_EVENT_TYPES`) is deleted at once, in the transaction that would have marked it sent, and
one that could not be published within `secret_retention` (set aside, or the broker down that long:
its link has expired by then) is deleted unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from prometheus_client import Gauge
from pydantic import ValidationError
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from common.broker import Broker, UnroutableEvent
from common.db import Database
from common.events import SECRET_EVENT_TYPES, Envelope, OutboxMixin, utcnow
from common.logs import describe, request_id_var

logger = logging.getLogger("gatehouse.outbox")

NOTIFY_CHANNEL = "gatehouse_outbox"
# A row that failed this many times for its own reasons (unroutable, malformed) is left aside.
ROW_ATTEMPT_LIMIT = 5

OUTBOX_PENDING = Gauge("gatehouse_outbox_pending", "Outbox rows not yet published.")


async def add_outbox_event(db: AsyncSession, model: type[OutboxMixin], envelope: Envelope) -> None:
    """Add the outbox row for `envelope` to the caller's transaction and wake the relays at
    commit (PostgreSQL NOTIFY is transactional). Only flushes; the caller commits."""
    db.add(model(**model.for_envelope(envelope, request_id_var.get())))
    await db.flush()
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def _terminate_listener(opening: asyncio.Future[Any]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().terminate()


class OutboxRelay:
    def __init__(
        self,
        database: Database,
        model: type[OutboxMixin],
        broker: Broker,
        *,
        batch_size: int = 100,
        poll_interval: float = 0.2,
        listen_poll_interval: float = 0.5,
        retention: timedelta = timedelta(days=7),
        secret_retention: timedelta = timedelta(hours=1),
        prune_interval: float = 300.0,
        max_backoff: float = 30.0,
        listen: bool = True,
    ) -> None:
        self.database = database
        self.model: Any = model  # the mapped subclass; typed loosely for column expressions
        self.broker = broker
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.listen_poll_interval = listen_poll_interval
        self.retention = retention
        self.secret_retention = secret_retention
        self.prune_interval = prune_interval
        self.max_backoff = max_backoff
        self.is_postgres = database.engine.dialect.name == "postgresql"
        self.listen = listen and self.is_postgres
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None  # asyncpg.Connection
        self._listen_retry_at = 0.0
        self._last_prune = 0.0

    def wake(self) -> None:
        """Publish now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox relay")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop after the batch in flight (its rows are committed or rolled back, never half);
        cancel only when that takes longer than `grace_seconds`."""
        if self._task is not None:
            self._stopping.set()
            self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=grace_seconds)
            if not done:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            self._stopping.clear()
        await self._close_listener()

    # One pass --------------------------------------------------------------------------------
    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published. Raises (after
        committing what was confirmed) when the broker failed."""
        table = self.model.__table__
        statement = (
            select(table.c.seq, table.c.event_type, table.c.payload, table.c.request_id)
            .where(table.c.sent_at.is_(None), table.c.attempts < ROW_ATTEMPT_LIMIT)
            .order_by(table.c.seq)
            .limit(self.batch_size)
        )
        if self.is_postgres:
            statement = statement.with_for_update(skip_locked=True)
        broker_error: BaseException | None = None
        async with self.database.sessionmaker() as db, db.begin():
            rows = (await db.execute(statement)).all()
            if not rows:
                return 0
            envelopes: list[tuple[Envelope, str | None] | None] = []
            for row in rows:
                try:
                    envelopes.append((Envelope.model_validate(row.payload), row.request_id))
                except ValidationError as exc:
                    logger.error("outbox row %s is not an envelope: %s", row.seq, describe(exc))
                    envelopes.append(None)
            # Publishes go out on one channel in this order; confirms arrive concurrently.
            results = await asyncio.gather(
                *(self._publish(envelope) for envelope in envelopes), return_exceptions=True
            )
            sent: list[int] = []
            secret: list[int] = []
            refused: list[int] = []
            for row, result in zip(rows, results, strict=True):
                if result is None:
                    (secret if row.event_type in SECRET_EVENT_TYPES else sent).append(row.seq)
                elif isinstance(result, UnroutableEvent | ValueError):
                    refused.append(row.seq)
                    logger.error("outbox row %s not published: %s", row.seq, describe(result))
                elif isinstance(result, Exception):
                    broker_error = broker_error or result
                else:  # cancellation and the like: leave the transaction to roll back
                    raise result
            if sent:
                await db.execute(
                    update(table).where(table.c.seq.in_(sent)).values(sent_at=utcnow())
                )
            if secret:  # the clear token is kept no longer than it takes to publish it
                await db.execute(delete(table).where(table.c.seq.in_(secret)))
            if refused:
                await db.execute(
                    update(table)
                    .where(table.c.seq.in_(refused))
                    .values(attempts=table.c.attempts + 1)
                )
        if broker_error is not None:
            raise broker_error
        return len(sent) + len(secret)

    async def _publish(self, item: tuple[Envelope, str | None] | None) -> None:
        if item is None:
            raise ValueError("malformed outbox payload")
        envelope, request_id = item
        await self.broker.publish(envelope, request_id=request_id)

    async def prune(self) -> int:
        """Delete sent rows older than the retention, and rows carrying a link token older than
        `secret_retention`, sent or not; returns how many."""
        now = utcnow()
        model = self.model
        async with self.database.sessionmaker() as db, db.begin():
            result = await db.execute(
                delete(model).where(
                    model.sent_at.is_not(None), model.sent_at < now - self.retention
                )
            )
            secrets = await db.execute(
                delete(model).where(
                    model.event_type.in_(sorted(SECRET_EVENT_TYPES)),
                    model.created_at < now - self.secret_retention,
                )
            )
        return int(getattr(result, "rowcount", 0) or 0) + int(getattr(secrets, "rowcount", 0) or 0)

    async def pending_count(self) -> int:
        model = self.model
        async with self.database.sessionmaker() as db:
            count = await db.scalar(
                select(func.count()).select_from(model).where(model.sent_at.is_(None))
            )
        OUTBOX_PENDING.set(count or 0)
        return int(count or 0)

    # The loop --------------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            await self._ensure_listener()
            try:
                published = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.25), self.max_backoff)
                logger.warning("outbox relay: %s; retrying in %.2fs", describe(exc), backoff)
                await self._housekeeping()
                await self._sleep(backoff, wakeable=False)
                continue
            backoff = 0.0
            if published >= self.batch_size:
                continue  # more rows are waiting
            await self._housekeeping()
            listening = self._listener is not None
            interval = self.listen_poll_interval if listening else self.poll_interval
            await self._sleep(interval, wakeable=True)

    async def _housekeeping(self) -> None:
        try:
            await self.pending_count()
            if time.monotonic() - self._last_prune >= self.prune_interval:
                self._last_prune = time.monotonic()
                pruned = await self.prune()
                if pruned:
                    logger.info("outbox relay pruned %d sent rows", pruned)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("outbox housekeeping failed: %s", describe(exc))

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        if not wakeable:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _ensure_listener(self) -> None:
        if not self.listen or (self._listener is not None and not self._listener.is_closed()):
            return
        if time.monotonic() < self._listen_retry_at:
            return
        await self._close_listener()
        url = make_url(self.database.url).set(drivername="postgresql")
        opening = asyncio.ensure_future(self._open_listener(url.render_as_string(False)))
        try:
            connection = await asyncio.shield(opening)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("outbox relay cannot LISTEN (%s); polling", exc)
            self._listen_retry_at = time.monotonic() + 30.0
            return
        except asyncio.CancelledError:
            # Stopped while connecting: close the connection once it exists, never leak it.
            opening.add_done_callback(_terminate_listener)
            raise
        self._listener = connection

    async def _open_listener(self, dsn: str) -> Any:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except BaseException:
            connection.terminate()
            raise
        return connection

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)
