"""common.serve's transport: a response's writes of one event-loop turn leave as one."""

from __future__ import annotations

import asyncio
from typing import Any

from common.serve import CoalescingHttpTools, CoalescingTransport, server_for
from fastapi import FastAPI


class Recorded:
    """A transport double: what was written, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


async def test_the_writes_of_one_turn_leave_in_one_write_in_order() -> None:
    inner = Recorded()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    assert inner.writes == []
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"next"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's


async def test_a_close_sends_what_was_written_first() -> None:
    inner = Recorded()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"the last answer")
    transport.close()
    assert inner.writes == [b"the last answer"]
    assert inner.closed
    await asyncio.sleep(0)
    assert inner.writes == [b"the last answer"]  # nothing twice


def test_services_are_served_on_it() -> None:
    """(The graceful-shutdown tests answer real requests through it.)"""
    assert server_for(FastAPI(), "127.0.0.1", 0).config.http is CoalescingHttpTools
