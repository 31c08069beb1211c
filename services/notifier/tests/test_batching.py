"""Group commit: concurrent writes share one transaction, failures stay with their own item."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from notifier.deliveries.batching import GroupCommit


class Writer:
    """Records the batches it is given; each write takes one event-loop turn (like a commit)."""

    def __init__(self, bad: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.bad = bad or set()
        self.gate: asyncio.Event | None = None

    async def write_many(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.bad & set(items):
            raise ValueError(f"bad item in {list(items)}")
        return [item * 10 for item in items]


async def test_a_lone_item_is_written_at_once() -> None:
    writer = Writer()
    group = GroupCommit(writer.write_many)
    assert await group.submit(1) == 10
    assert writer.batches == [[1]]


async def test_items_arriving_during_a_write_share_the_next_transaction() -> None:
    writer = Writer()
    writer.gate = asyncio.Event()
    group = GroupCommit(writer.write_many)
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)  # the first write is in flight, held at the gate
    rest = [asyncio.create_task(group.submit(item)) for item in range(1, 6)]
    await asyncio.sleep(0)
    writer.gate.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
    assert writer.batches == [[0], [1, 2, 3, 4, 5]]


async def test_batches_are_capped() -> None:
    writer = Writer()
    group = GroupCommit(writer.write_many, max_batch=2)
    results = await asyncio.gather(*(group.submit(item) for item in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert [len(batch) for batch in writer.batches] == [2, 2, 1]


async def test_a_failing_batch_is_retried_item_by_item_and_only_the_bad_item_fails() -> None:
    writer = Writer(bad={3})
    group = GroupCommit(writer.write_many)
    results = await asyncio.gather(
        *(group.submit(item) for item in range(1, 6)), return_exceptions=True
    )
    assert results[:2] == [10, 20]
    assert isinstance(results[2], ValueError)
    assert results[3:] == [40, 50]
    assert [1, 2, 3, 4, 5] in writer.batches
    assert [3] in writer.batches


async def test_a_cancelled_submitter_does_not_cancel_the_shared_write() -> None:
    writer = Writer()
    writer.gate = asyncio.Event()
    group = GroupCommit(writer.write_many)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(group.submit(2))
    third = asyncio.create_task(group.submit(3))
    await asyncio.sleep(0)
    second.cancel()
    writer.gate.set()
    assert await first == 10
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await third == 30
    assert writer.batches == [[1], [2, 3]]  # the cancelled item was still written


async def test_items_waiting_when_the_writer_is_cancelled_are_cancelled_too() -> None:
    writer = Writer()
    writer.gate = asyncio.Event()
    group = GroupCommit(writer.write_many)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0)
    assert group._writer is not None
    group._writer.cancel()  # shutdown
    for task in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await task
    writer.gate.set()
    assert await group.submit(3) == 30  # a new writer starts


async def test_lingering_never_delays_an_item_that_finds_the_writer_idle() -> None:
    writer = Writer()
    group = GroupCommit(writer.write_many, linger=3600)
    async with asyncio.timeout(5):
        assert await group.submit(1) == 10
        assert await group.submit(2) == 20
    assert writer.batches == [[1], [2]]


async def test_a_batch_following_another_lingers_to_gather_more_items() -> None:
    writer = Writer()
    writer.gate = asyncio.Event()
    group = GroupCommit(writer.write_many, linger=0.2)
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)
    early = asyncio.create_task(group.submit(1))  # arrives during the first commit
    await asyncio.sleep(0)
    writer.gate.set()
    assert await first == 0
    late = [asyncio.create_task(group.submit(item)) for item in (2, 3)]  # during the linger
    assert await asyncio.gather(early, *late) == [10, 20, 30]
    assert writer.batches == [[0], [1, 2, 3]]


async def test_a_full_batch_ends_the_linger() -> None:
    writer = Writer()
    writer.gate = asyncio.Event()
    group = GroupCommit(writer.write_many, linger=3600, max_batch=3)
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(item)) for item in (1, 2)]
    await asyncio.sleep(0)
    writer.gate.set()
    async with asyncio.timeout(5):
        assert await first == 0
        await asyncio.sleep(0.01)  # the writer is lingering with 2 of 3 items
        rest.append(asyncio.create_task(group.submit(3)))
        assert await asyncio.gather(*rest) == [10, 20, 30]
    assert writer.batches == [[0], [1, 2, 3]]
