"""The script runner: any Lua script, keys and arguments, packed as EVALSHA and loaded again when
Redis has forgotten it, on the pipe and on redis-py alike."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from common.redis import EmbeddedRedis
from gateway.redis_pipe import PipelinedRedis, pack_command
from gateway.redis_script import MAX_PACKED_ARGUMENTS, RedisScript, script_sha

from .support import REDIS_URL

# Another shape than the guard's: two keys, three arguments, a mixed reply.
SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1])
local total = redis.call('INCRBY', KEYS[2], ARGV[2])
return {total, redis.call('GET', KEYS[1]), ARGV[3]}
"""


@pytest.mark.parametrize(
    ("keys", "args"),
    [
        (["a"], []),
        ([], [1, b"x", "é"]),
        (["k:1", "k:é", "k\r\n"], [0, 60, -1, "text"]),
    ],
)
def test_any_script_call_packs_as_pack_command_would(
    keys: list[str], args: list[bytes | str | int]
) -> None:
    script = RedisScript(SCRIPT, aioredis.Redis())
    for _ in range(2):  # packed afresh, then from the parts kept
        expected = pack_command(b"EVALSHA", script.sha, len(keys), *keys, *args)
        assert script.command(keys, args) == expected


def test_arguments_that_change_every_call_are_not_all_kept() -> None:
    script = RedisScript(SCRIPT, aioredis.Redis())
    for now in range(MAX_PACKED_ARGUMENTS * 3):
        expected = pack_command(b"EVALSHA", script.sha, 1, "k", now)
        assert script.command(["k"], [now]) == expected
    assert len(script._packed) <= MAX_PACKED_ARGUMENTS


async def test_the_pipe_loads_a_forgotten_script_and_runs_it(
    redis_db: aioredis.Redis,
) -> None:
    pipe = PipelinedRedis(REDIS_URL)
    text = SCRIPT + f"-- {uuid.uuid4().hex}\n"  # a script this Redis has never seen
    script = RedisScript(text, redis_db, pipe)
    prefix = f"script-test:{uuid.uuid4().hex}"
    keys = [f"{prefix}:a", f"{prefix}:b"]
    try:
        assert script.sha == script_sha(text)
        assert await script.run(keys, ["v", 2, "third"]) == [2, b"v", b"third"]
        await pipe.execute(b"SCRIPT", b"FLUSH")  # as a restarted Redis would have
        assert await script.run(keys, ["w", 3, "x"]) == [5, b"w", b"x"]
    finally:
        await pipe.aclose()
        await redis_db.delete(*keys)


async def test_redis_py_loads_a_forgotten_script_and_runs_it() -> None:
    store = EmbeddedRedis().client()
    script = RedisScript(SCRIPT, store)
    try:
        assert await script.run(["a", "b"], ["v", 2, "third"]) == [2, b"v", b"third"]
        await store.script_flush()
        assert await script.run(["a", "b"], ["w", 3, "x"]) == [5, b"w", b"x"]
    finally:
        await store.aclose()
