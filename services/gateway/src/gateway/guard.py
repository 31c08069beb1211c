"""Rate limits and revocation in one Redis round trip per request (one Lua script).

Fixed windows: the counter key carries the window number, so a window's count expires with it.
When Redis cannot answer, limits fall back to a per-process limiter (never to none) and a request
with a token fails closed (503): the gateway cannot know whether its session was revoked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from common.revocation import session_key, user_key
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.metrics import FALLBACKS
from gateway.redis_pipe import PipelinedRedis, as_ints
from gateway.redis_script import RedisScript, script_sha

logger = logging.getLogger("gatehouse.gateway.guard")

# What happens to a request while Redis cannot answer (the `rule` label of the fallback metric).
FAIL_CLOSED = "fail_closed"
GENERAL_LOCAL = "general_local_limit"
LOGIN_LOCAL = "login_local_limit"
FALLBACK_TEXT = {
    FAIL_CLOSED: "requests with a token are refused (503), revocation cannot be checked",
    GENERAL_LOCAL: "the general rate limit is counted per process",
    LOGIN_LOCAL: "the login rate limit is counted per process",
}
LOG_EVERY_SECONDS = 10.0

# KEYS: general counter, login counter, session marker, user marker.
# ARGV: general window seconds, login window seconds, check login (0/1), check revocation (0/1).
# Returns: general count, login count, session revoked (0/1), user not-before (or -1).
SCRIPT = """
local general = redis.call('INCR', KEYS[1])
if general == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1] + 1) end
local login = 0
if ARGV[3] == '1' then
  login = redis.call('INCR', KEYS[2])
  if login == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2] + 1) end
end
local revoked = 0
local not_before = -1
if ARGV[4] == '1' then
  revoked = redis.call('EXISTS', KEYS[3])
  local value = redis.call('GET', KEYS[4])
  if value then not_before = tonumber(value) end
end
return {general, login, revoked, not_before}
"""
SCRIPT_SHA = script_sha(SCRIPT)


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    limit: int
    window: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the guard decided: a 429 (`limited` names the limit), a 503, or go ahead."""

    limited: Limit | None = None
    retry_after: int = 0
    remaining: int = 0
    reset: int = 0
    revoked: bool = False
    unavailable: bool = False  # revocation could not be checked: fail closed


class LocalLimiter:
    """Per-process fixed windows, used only while Redis is unreachable."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.counts: dict[str, int] = {}
        self.max_keys = max_keys

    def hit(self, key: str) -> int:
        if len(self.counts) >= self.max_keys:
            self.counts.clear()  # windows are short; forgetting is safer than growing
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        return count


class Guard:
    """`pipe`, when given, carries the script (a plain redis:// server); else `redis` does (the
    embedded store, TLS or socket URLs)."""

    def __init__(
        self, redis: Redis, general: Limit, login: Limit, pipe: PipelinedRedis | None = None
    ) -> None:
        self.script = RedisScript(SCRIPT, redis, pipe)
        self.general = general
        self.login = login
        self.local = LocalLimiter()
        self._fallback_logged: dict[str, float] = {}

    async def check(
        self,
        client_key: str,
        login_key: str | None,
        session_id: str | None,
        user_id: str | None,
        issued_at: int,
        now: float | None = None,
    ) -> Verdict:
        now = time.time() if now is None else now
        general_window = int(now // self.general.window)
        login_window = int(now // self.login.window)
        general_key = f"rl:{client_key}:{general_window}"
        login_counter = f"rl:login:{login_key}:{login_window}"
        revocation = user_id is not None
        keys = [
            general_key,
            login_counter,
            session_key(session_id or "-"),
            user_key(user_id or "-"),
        ]
        args = [
            self.general.window,
            self.login.window,
            1 if login_key else 0,
            1 if revocation else 0,
        ]
        try:
            general, login, revoked, not_before = as_ints(await self.script.run(keys, args))
        except (RedisError, OSError) as exc:
            if revocation:
                self._fallback(FAIL_CLOSED, exc)
                return Verdict(unavailable=True)
            self._fallback(GENERAL_LOCAL, exc)
            general = self.local.hit(general_key)
            login = 0
            if login_key:
                self._fallback(LOGIN_LOCAL, exc)
                login = self.local.hit(login_counter)
            revoked, not_before = 0, -1
        if revoked or (not_before >= 0 and issued_at < not_before):
            return Verdict(revoked=True)
        if login_key and login > self.login.limit:
            return self._limited(self.login, login, now)
        if general > self.general.limit:
            return self._limited(self.general, general, now)
        return Verdict(
            remaining=max(self.general.limit - general, 0),
            reset=self._reset(self.general, now),
        )

    @staticmethod
    def _reset(limit: Limit, now: float) -> int:
        return max(1, int(limit.window - (now % limit.window) + 0.999))

    def _limited(self, limit: Limit, count: int, now: float) -> Verdict:
        reset = self._reset(limit, now)
        return Verdict(limited=limit, retry_after=reset, remaining=0, reset=reset)

    def _fallback(self, rule: str, exc: BaseException) -> None:
        """Count every request decided without Redis; log each rule at most every 10 s."""
        FALLBACKS.labels(rule).inc()
        now = time.monotonic()
        if now - self._fallback_logged.get(rule, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            self._fallback_logged[rule] = now
            logger.error("redis unavailable (%s): %s", type(exc).__name__, FALLBACK_TEXT[rule])
