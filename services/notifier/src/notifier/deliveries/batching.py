"""Group commit: writes submitted concurrently share one database transaction.

Each consumer task submits its item and waits for the transaction that carries it to commit, so
nothing a task does afterwards (sending the email, acking the message) runs before its own write
is durable. Items submitted while a transaction is in flight form the next batch, and a batch that
follows straight on another (the writer is under load) first lingers up to `linger` seconds for
more items, unless `max_batch` are already waiting. An item that finds the writer idle is written
at once: a lone event pays no delay, and under load a few milliseconds buy batches of tens of
items (one transaction costs as much CPU as writing dozens of rows in it). When a batch fails,
its items are retried one by one, so a single bad item fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        write_many: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int = 256,
        linger: float = 0.0,
    ) -> None:
        self.write_many = write_many
        self.max_batch = max_batch
        self.linger = linger
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._full = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write `item` (with whatever else is waiting) and return its result once committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_batch:
            self._full.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="group commit")
        # The write goes on if this task is cancelled: other items share its transaction.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            under_load = False
            while self._pending:
                if under_load and self.linger > 0 and len(self._pending) < self.max_batch:
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.linger):
                            await self._full.wait()
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._write(batch)
                under_load = True
        except BaseException as exc:  # cancelled (shutdown): nothing left will be written
            waiting, self._pending = self._pending, []
            for _, future in waiting:
                _fail(future, exc)
            raise

    async def _write(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.write_many([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            for single in batch:
                await self._write([single])
            return
        except BaseException as exc:  # cancelled: nobody is left to retry; fail them all
            for _, future in batch:
                _fail(future, exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(future: asyncio.Future[Result], exception: BaseException) -> None:
    if not future.done():
        if isinstance(exception, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exception)
