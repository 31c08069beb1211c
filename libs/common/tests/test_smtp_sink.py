"""The suites' SMTP server (common.testing.SmtpSink) stops without leaving a socket open."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings

from common.testing import SmtpSink


async def test_a_sink_stopped_while_connections_arrive_closes_every_socket() -> None:
    """A connection accepted a moment before the stop (a sender's next attempt) is closed with
    the server: its socket is not left for the garbage collector to find unclosed, as a
    ResourceWarning in some later test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(20):
            sink = SmtpSink()
            sink.start()
            arriving = asyncio.ensure_future(asyncio.open_connection("127.0.0.1", sink.port))
            await asyncio.sleep(0)
            sink.stop()
            with contextlib.suppress(OSError):
                _, writer = await arriving
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            gc.collect()
    assert [str(warning.message) for warning in caught] == []
