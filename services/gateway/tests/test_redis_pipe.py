"""The guard's pipelined Redis connection: RESP parsing, ordering under concurrency, connection
setup (AUTH, SELECT), and failures; and the guard on the embedded store (redis-py's path)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from common.redis import EmbeddedRedis
from common.revocation import EPOCH_KEY, mark_session_revoked
from common.testing import ThrowawayRedis
from gateway.guard import SCRIPT_SHA, Guard, Limit
from gateway.redis_pipe import (
    FLUSH_TURNS,
    PipelinedRedis,
    Reply,
    _Protocol,
    as_ints,
    pack_command,
    reply_reader,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .support import REDIS_URL


def parse(raw: bytes) -> Reply | bool:
    """The first reply in `raw`, False while incomplete; the whole of `raw` must be that reply."""
    reader = reply_reader()
    reader.feed(raw)
    reply: Reply | bool = reader.gets()
    if reply is not False:
        assert not reader.has_data()  # nothing left over
    return reply


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b":42\r\n", 42),
        (b":-1\r\n", -1),
        (b"+OK\r\n", b"OK"),
        (b"$5\r\nhello\r\n", b"hello"),
        (b"$0\r\n\r\n", b""),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (b"*4\r\n:1\r\n:0\r\n:0\r\n:-1\r\n", [1, 0, 0, -1]),
        (b"*2\r\n$3\r\nabc\r\n*1\r\n:7\r\n", [b"abc", [7]]),
    ],
)
def test_replies_parse(raw: bytes, value: object) -> None:
    assert parse(raw) == value
    for cut in range(len(raw)):  # every prefix is incomplete, never wrong
        assert parse(raw[:cut]) is False


def test_errors_parse_to_redis_exceptions() -> None:
    noscript = parse(b"-NOSCRIPT No matching script.\r\n")
    assert isinstance(noscript, NoScriptError)
    assert str(noscript) == "NOSCRIPT No matching script."
    other = parse(b"-ERR wrong number of arguments\r\n")
    assert isinstance(other, ResponseError)
    assert not isinstance(other, NoScriptError)


def test_commands_pack_as_bulk_strings() -> None:
    assert pack_command("GET", b"k\r\n", 5) == b"*3\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n$1\r\n5\r\n"


@pytest.mark.parametrize("flags", list(itertools.product((0, 1), repeat=3)))
def test_the_guard_packs_its_script_call_as_pack_command_would(flags: tuple[int, ...]) -> None:
    guard = Guard(aioredis.Redis(), Limit("general", 100, 1), Limit("login", 5, 60))
    keys = [
        "rl:user:u-1:1790000000",
        "rl:login:None:29833333",
        "rl:login_ip:None:29833333",
        "revoked:sid:é",
        "revoked:user:-",
        EPOCH_KEY,
    ]
    args = [1, 60, 60, *flags]
    expected = pack_command(b"EVALSHA", SCRIPT_SHA, 6, *keys, *args)
    assert guard.script.command(keys, args) == expected


@pytest.mark.parametrize(
    "raw",
    [b"*2\r\n:1", b"*2\r\n:1\r\n", b"*2\r\n:1\r\n:", b"*2\r\n:1\r\n$1\r\nx"],
)
def test_arrays_cut_anywhere_are_incomplete(raw: bytes) -> None:
    assert parse(raw) is False


def test_script_replies_must_be_integers() -> None:
    assert as_ints([1, 2]) == [1, 2]
    with pytest.raises(ResponseError):
        as_ints([b"1"])


async def test_concurrent_commands_get_their_own_replies() -> None:
    pipe = PipelinedRedis(REDIS_URL)
    key = f"pipe-test:{uuid.uuid4().hex}"
    try:
        replies = await asyncio.gather(*(pipe.execute("INCR", key) for _ in range(300)))
        assert sorted(replies) == list(range(1, 301))  # type: ignore[type-var]
        echoes = await asyncio.gather(*(pipe.execute("ECHO", f"v{i}") for i in range(100)))
        assert echoes == [f"v{i}".encode() for i in range(100)]
        with pytest.raises(ResponseError):
            await pipe.execute("NOSUCHCOMMAND")
        assert await pipe.execute("DEL", key) == 1  # the connection goes on after an error
    finally:
        await pipe.aclose()


async def test_the_database_number_is_selected(redis_db: aioredis.Redis) -> None:
    pipe = PipelinedRedis(REDIS_URL)
    try:
        await pipe.execute("SET", "pipe-db-probe", "here")
    finally:
        await pipe.aclose()
    assert await redis_db.get("pipe-db-probe") == b"here"  # redis_db is DB 2 as well


@pytest.mark.fault
async def test_password_protected_redis(tmp_path: Path) -> None:
    node = ThrowawayRedis(tmp_path, password="s3cret-pass")
    node.start(epoch=True)
    try:
        good = PipelinedRedis(node.url())
        assert await good.execute("PING") == b"PONG"
        await good.aclose()
        bad = PipelinedRedis(node.url().replace("s3cret-pass", "wrong"))
        with pytest.raises(ResponseError):
            await bad.execute("PING")
        await bad.aclose()
    finally:
        node.stop()


@pytest.mark.fault
async def test_failures_surface_as_redis_errors_and_the_pipe_reconnects(tmp_path: Path) -> None:
    node = ThrowawayRedis(tmp_path)
    node.start(epoch=True)
    pipe = PipelinedRedis(node.url(), timeout=0.3)
    try:
        assert await pipe.execute("PING") == b"PONG"
        node.freeze()
        started = time.monotonic()
        pending = [asyncio.ensure_future(pipe.execute("PING")) for _ in range(20)]
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(result, RedisTimeoutError) for result in results)
        # One timeout for them all (0.3 s), not twenty in turn (6 s); the margin is for a pause
        # of the process (a full garbage collection late in the suite).
        assert time.monotonic() - started < 3.0
        node.thaw()
        assert await pipe.execute("PING") == b"PONG"  # a fresh connection
        node.stop()
        with pytest.raises(RedisConnectionError):
            await pipe.execute("PING")
        with pytest.raises(RedisConnectionError):  # at once, during the pause after a failure
            await pipe.execute("PING")
        node.start(epoch=True)
        await asyncio.sleep(0.3)
        assert await pipe.execute("PING") == b"PONG"
    finally:
        await pipe.aclose()
        node.stop()


async def test_the_guard_on_the_embedded_store() -> None:
    store = EmbeddedRedis().client()
    guard = Guard(store, Limit("general", 2, 60), Limit("login", 1, 60))
    await store.set(EPOCH_KEY, b"1")  # as auth sets it: every revocation marker is in
    try:
        now = time.time()
        assert (await guard.check("ip:1", None, None, None, 0, now)).limited is None
        assert (await guard.check("ip:1", None, None, None, 0, now)).limited is None
        limited = await guard.check("ip:1", None, None, None, 0, now)
        assert limited.limited is not None
        assert limited.limited.name == "general"
        assert (await guard.check("ip:2", "ip:2:ada", None, None, 0, now)).limited is None
        login = await guard.check("ip:2", "ip:2:ada", None, None, 0, now)
        assert login.limited is not None
        assert login.limited.name == "login"
        await mark_session_revoked(store, "s-1")
        assert (await guard.check("user:u", None, "s-1", "u", int(now), now)).revoked
        assert not (await guard.check("user:v", None, "s-2", "v", int(now), now)).revoked
    finally:
        await store.aclose()


@pytest.mark.fault
async def test_requests_queued_behind_a_stuck_connection_attempt_fail_together(
    tmp_path: Path,
) -> None:
    node = ThrowawayRedis(tmp_path)
    node.start(epoch=True)
    pipe = PipelinedRedis(node.url().replace("/0", "/1"), timeout=0.5)  # SELECT on connecting
    try:
        node.freeze()  # the handshake completes (the kernel accepts), SELECT never answers
        started = time.monotonic()
        results = await asyncio.gather(
            *(pipe.execute("PING") for _ in range(20)), return_exceptions=True
        )
        assert all(
            isinstance(result, RedisConnectionError | RedisTimeoutError) for result in results
        )
        assert time.monotonic() - started < 5.0  # one timeout (0.5 s), not twenty in turn (10 s)
    finally:
        node.thaw()
        await pipe.aclose()
        node.stop()


async def test_replies_split_anywhere_across_reads_resolve_in_order() -> None:
    pipe = PipelinedRedis(REDIS_URL)
    loop = asyncio.get_running_loop()
    protocol = _Protocol(pipe, loop)
    replies = b"*4\r\n:1\r\n:0\r\n:0\r\n:-1\r\n+OK\r\n$5\r\nhello\r\n*2\r\n:2\r\n$1\r\nx\r\n"
    expected: list[object] = [[1, 0, 0, -1], b"OK", b"hello", [2, b"x"]]
    for step in (1, 2, 3, 5, 7, len(replies)):
        futures = [loop.create_future() for _ in expected]
        pipe.waiting.extend((future, loop.time() + 60) for future in futures)
        for offset in range(0, len(replies), step):
            protocol.data_received(replies[offset : offset + step])
        assert [future.result() for future in futures] == expected, step
        assert not protocol.reader.has_data()
        assert not pipe.waiting


async def test_a_malformed_reply_drops_the_connection_and_fails_its_requests() -> None:
    pipe = PipelinedRedis(REDIS_URL)
    try:
        assert await pipe.execute("PING") == b"PONG"
        protocol = pipe._protocol
        assert protocol is not None
        waiting = asyncio.ensure_future(pipe.execute("BLPOP", f"pipe-test:{uuid.uuid4().hex}", 5))
        await asyncio.sleep(0.05)
        protocol.data_received(b"?what\r\n")
        with pytest.raises(RedisConnectionError, match="bad reply"):
            await waiting
        assert pipe._protocol is None
        assert await pipe.execute("PING") == b"PONG"  # a fresh connection
    finally:
        await pipe.aclose()


class CountedWrites:
    """A transport that records each write before passing it on."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.inner.write(data)

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def abort(self) -> None:
        self.inner.abort()


@contextlib.asynccontextmanager
async def counted_pipe() -> AsyncIterator[tuple[PipelinedRedis, _Protocol, CountedWrites]]:
    """A pipe whose connection is open (a PING answered), its writes counted from then on."""
    pipe = PipelinedRedis(REDIS_URL)
    try:
        assert await pipe.execute("PING") == b"PONG"
        protocol = pipe._protocol
        assert protocol is not None
        assert protocol.transport is not None
        counted = CountedWrites(protocol.transport)
        protocol.transport = counted  # type: ignore[assignment]
        yield pipe, protocol, counted
    finally:
        await pipe.aclose()


async def test_the_commands_of_one_loop_turn_go_out_in_one_write() -> None:
    async with counted_pipe() as (pipe, _, counted):
        echoes = await asyncio.gather(*(pipe.execute("ECHO", f"v{i}") for i in range(50)))
        assert echoes == [f"v{i}".encode() for i in range(50)]
        assert counted.writes == [b"".join(pack_command("ECHO", f"v{i}") for i in range(50))]
        assert await pipe.execute("PING") == b"PONG"  # the next turn: a write of its own
        assert len(counted.writes) == 2


async def test_the_commands_of_a_few_loop_turns_go_out_in_one_write() -> None:
    """Requests read in the turns after the first command join its write: one send under load
    for the requests of several turns, not one per turn."""
    assert FLUSH_TURNS > 1
    async with counted_pipe() as (pipe, protocol, counted):
        commands = [pack_command("ECHO", f"turn {turn}") for turn in range(FLUSH_TURNS)]
        sent = []
        for command in commands:  # one command per turn of the loop (`_send` is what
            sent.append(pipe._send(protocol, command))  # `execute` runs, minus its await)
            await asyncio.sleep(0)
        assert counted.writes == [b"".join(commands)]
        assert await asyncio.gather(*sent) == [f"turn {t}".encode() for t in range(FLUSH_TURNS)]
        late = pipe._send(protocol, pack_command("ECHO", "late"))
        await asyncio.sleep(0)
        assert len(counted.writes) == 1  # not in the next turn: the write waits its turns
        assert await late == b"late"
        assert counted.writes[1:] == [pack_command("ECHO", "late")]
