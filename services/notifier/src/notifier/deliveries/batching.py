"""Group commit: writes submitted concurrently share one database transaction.

Each consumer task submits its item and waits for the transaction that carries it to commit, so
nothing a task does afterwards (sending the email, acking the message) runs before its own write
is durable. Items submitted while a transaction is in flight form the next batch: under load a
batch holds as many items as arrived during one commit, and an item on its own is written at once
(no timer, no added latency). When a batch fails, its items are retried one by one, so a single
bad item fails alone.
"""

from __future__ import annotations

import asyncio
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
    ) -> None:
        self.write_many = write_many
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write `item` (with whatever else is waiting) and return its result once committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="group commit")
        # The write goes on if this task is cancelled: other items share its transaction.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._write(batch)
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
