"""A Lua script kept in Redis and run by its SHA1: EVALSHA, and SCRIPT LOAD when Redis answers
NOSCRIPT (a new or restarted server), then EVALSHA again.

It runs on the pipelined connection (`PipelinedRedis`, a plain redis:// server) when there is one,
else on redis-py (the embedded store, TLS or socket URLs). On the pipe the command is packed from
parts made once: the head (EVALSHA, the SHA, the key count) and the packed arguments, per key count
and distinct argument list (most scripts take a few flags and windows), so a call packs only its
keys. The script's text, keys and arguments are the caller's: nothing here
knows what the script does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from gateway.redis_pipe import PipelinedRedis, Reply, pack_arguments

Argument = bytes | str | int

# Distinct argument lists packed and kept; past this many, arguments are packed on every call
# (a script whose arguments change per call, a timestamp say, must not grow the cache forever).
MAX_PACKED_ARGUMENTS = 64


def script_sha(text: str) -> str:
    """What Redis names a script: EVALSHA can run it at once."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class RedisScript:
    def __init__(self, text: str, redis: Redis, pipe: PipelinedRedis | None = None) -> None:
        self.text = text
        self.sha = script_sha(text)
        self.redis = redis
        self.pipe = pipe
        # (key count, *arguments) -> (head, packed arguments)
        self._packed: dict[tuple[Argument, ...], tuple[bytes, bytes]] = {}

    async def run(self, keys: Sequence[str], args: Sequence[Argument]) -> Reply:
        """The script's reply: integers, bytes, None or lists of them."""
        if self.pipe is not None:
            command = self.command(keys, args)
            try:
                return await self.pipe.execute_packed(command)
            except NoScriptError:
                await self.pipe.execute(b"SCRIPT", b"LOAD", self.text)
                return await self.pipe.execute_packed(command)
        try:
            result: Reply = await self.redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.redis.script_load(self.text)
            result = await self.redis.evalsha(self.sha, len(keys), *keys, *args)
        return result

    def command(self, keys: Sequence[str], args: Sequence[Argument]) -> bytes:
        """`pack_command(b"EVALSHA", sha, len(keys), *keys, *args)`, from parts packed once."""
        shape = (len(keys), *args)
        packed = self._packed.get(shape)
        if packed is None:
            head = b"*%d\r\n" % (3 + len(keys) + len(args))
            packed = (head + pack_arguments(b"EVALSHA", self.sha, len(keys)), pack_arguments(*args))
            if len(self._packed) < MAX_PACKED_ARGUMENTS:
                self._packed[shape] = packed
        head, arguments = packed
        parts = [head]
        for key in keys:
            encoded = key.encode()
            parts.append(b"$%d\r\n%b\r\n" % (len(encoded), encoded))
        parts.append(arguments)
        return b"".join(parts)
