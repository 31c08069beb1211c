"""Rate limits and revocation in one Redis round trip per request (one Lua script).

Fixed windows: the counter key carries the window number, so a window's count expires with it.
When Redis cannot answer, limits fall back to a per-process limiter (never to none) and a request
with a token fails closed (503): the gateway cannot know whether its session was revoked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from common.revocation import EPOCH_KEY, session_key, user_key
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
# Redis answers but has lost the revocation markers (restarted empty, failed over) and auth has
# not written them all back: token requests are refused as when Redis is down.
INCOMPLETE = "revocation_incomplete"
FALLBACK_TEXT = {
    INCOMPLETE: "missing, the revocation markers are incomplete: requests with a token are "
    "refused (503) until auth has restored them",
    FAIL_CLOSED: "requests with a token are refused (503), revocation cannot be checked",
    GENERAL_LOCAL: "the general rate limit is counted per process",
    LOGIN_LOCAL: "the login rate limit is counted per process",
}
LOG_EVERY_SECONDS = 10.0

# KEYS: general counter, account counter (IP + account: the login or the recovery limit's),
#       login counter (IP), session marker,
#       user marker, the revocation epoch (common.revocation.EPOCH_KEY).
# ARGV: general window, login window, login-IP window, count the account (0/1), count the IP
#       (0/1), check revocation (0/1).
# Returns: general count, login count, login-IP count, session revoked (0/1), user not-before
# (or -1), revocation markers complete (0/1: the epoch key exists; 1 when not checked).
SCRIPT = """
local general = redis.call('INCR', KEYS[1])
if general == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1] + 1) end
local login = 0
if ARGV[4] == '1' then
  login = redis.call('INCR', KEYS[2])
  if login == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2] + 1) end
end
local login_ip = 0
if ARGV[5] == '1' then
  login_ip = redis.call('INCR', KEYS[3])
  if login_ip == 1 then redis.call('EXPIRE', KEYS[3], ARGV[3] + 1) end
end
local revoked = 0
local not_before = -1
local complete = 1
if ARGV[6] == '1' then
  complete = redis.call('EXISTS', KEYS[6])
  revoked = redis.call('EXISTS', KEYS[4])
  local value = redis.call('GET', KEYS[5])
  if value then not_before = tonumber(value) end
end
return {general, login, login_ip, revoked, not_before, complete}
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
        self,
        redis: Redis,
        general: Limit,
        login: Limit,
        pipe: PipelinedRedis | None = None,
        login_ip: Limit | None = None,
        recovery: Limit | None = None,
    ) -> None:
        self.script = RedisScript(SCRIPT, redis, pipe)
        self.general = general
        self.login = login
        self.login_ip = login_ip or Limit("login_ip", 30, 60)
        self.recovery = recovery or Limit("recovery", 5, 3600)
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
        login_address: str | None = None,
        recovery: bool = False,
    ) -> Verdict:
        """`login_key` (client IP + account) counts the request under the login limit (the
        recovery limit when `recovery`), `login_address` (the client IP) under the per-IP login
        limit."""
        now = time.time() if now is None else now
        general_key = f"rl:{client_key}:{int(now // self.general.window)}"
        by_account = login_key is not None
        by_address = login_address is not None
        # Counters the script does not touch are named "-" (no formatting on most requests).
        account = self.recovery if recovery else self.login
        login_counter = (
            f"rl:{account.name}:{login_key}:{int(now // account.window)}" if by_account else "-"
        )
        address_counter = (
            f"rl:login_ip:{login_address}:{int(now // self.login_ip.window)}" if by_address else "-"
        )
        revocation = user_id is not None
        keys = [
            general_key,
            login_counter,
            address_counter,
            session_key(session_id or "-"),
            user_key(user_id or "-"),
            EPOCH_KEY,
        ]
        args = [
            self.general.window,
            account.window,
            self.login_ip.window,
            1 if by_account else 0,
            1 if by_address else 0,
            1 if revocation else 0,
        ]
        try:
            reply = as_ints(await self.script.run(keys, args))
            general, login, login_ip, revoked, not_before, complete = reply
        except (RedisError, OSError) as exc:
            if revocation:
                self._fallback(FAIL_CLOSED, exc)
                return Verdict(unavailable=True)
            self._fallback(GENERAL_LOCAL, exc)
            general = self.local.hit(general_key)
            login = login_ip = 0
            if by_account or by_address:
                self._fallback(LOGIN_LOCAL, exc)
                login = self.local.hit(login_counter) if by_account else 0
                login_ip = self.local.hit(address_counter) if by_address else 0
            revoked, not_before, complete = 0, -1, 1
        if not complete:
            self._fallback(INCOMPLETE, None)
            return Verdict(unavailable=True)
        if revoked or (not_before >= 0 and issued_at < not_before):
            return Verdict(revoked=True)
        if by_account and login > account.limit:
            return self._limited(account, now)
        if by_address and login_ip > self.login_ip.limit:
            return self._limited(self.login_ip, now)
        if general > self.general.limit:
            return self._limited(self.general, now)
        return Verdict(
            remaining=max(self.general.limit - general, 0),
            reset=self._reset(self.general, now),
        )

    @staticmethod
    def _reset(limit: Limit, now: float) -> int:
        return max(1, int(limit.window - (now % limit.window) + 0.999))

    def _limited(self, limit: Limit, now: float) -> Verdict:
        reset = self._reset(limit, now)
        return Verdict(limited=limit, retry_after=reset, remaining=0, reset=reset)

    def _fallback(self, rule: str, exc: BaseException | None) -> None:
        """Count every request decided without Redis (or without complete revocation markers);
        log each rule at most every 10 s."""
        FALLBACKS.labels(rule).inc()
        now = time.monotonic()
        if now - self._fallback_logged.get(rule, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            self._fallback_logged[rule] = now
            if exc is None:
                logger.error("%s: %s", EPOCH_KEY, FALLBACK_TEXT[rule])
            else:
                logger.error("redis unavailable (%s): %s", type(exc).__name__, FALLBACK_TEXT[rule])
