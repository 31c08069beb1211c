"""The revocation markers auth writes and the gateway reads, in one place.

- `revoked:sid:<sid>` exists → every access token of that session is refused. TTL: the longest
  access-token lifetime (after that the tokens have expired anyway).
- `revoked:user:<user id>` = a UNIX time → the user's access tokens issued (`iat`) before it are
  refused. Written when all of a user's sessions end (password change, deactivation).
- `revocation:epoch` exists → the markers above are complete. Redis is only a cache of auth's
  database: a Redis that restarts empty (or a failover to an empty replica) loses the markers and
  this key with them. Auth writes the key only after re-writing, from its database, every marker
  still inside `MAX_ACCESS_TOKEN_SECONDS`; until then the gateway refuses token requests (503),
  because a missing marker would read as "nothing is revoked".
"""

from __future__ import annotations

from redis.asyncio import Redis

# Access tokens never live longer than this (API.md §2), so markers need not either.
MAX_ACCESS_TOKEN_SECONDS = 30 * 60
SESSION_PREFIX = "revoked:sid:"
USER_PREFIX = "revoked:user:"
EPOCH_KEY = "revocation:epoch"


def session_key(session_id: str) -> str:
    return SESSION_PREFIX + session_id


def user_key(user_id: str) -> str:
    return USER_PREFIX + user_id


async def mark_session_revoked(
    redis: Redis, session_id: str, ttl: int = MAX_ACCESS_TOKEN_SECONDS
) -> None:
    await redis.set(session_key(session_id), b"1", ex=ttl)


_RAISE_NOT_BEFORE = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


async def mark_user_tokens_before(
    redis: Redis, user_id: str, not_before: int, ttl: int = MAX_ACCESS_TOKEN_SECONDS
) -> None:
    """Refuse the user's tokens issued before `not_before`; never moves the marker back."""
    await redis.eval(_RAISE_NOT_BEFORE, 1, user_key(user_id), str(not_before), str(ttl))


async def is_revoked(redis: Redis, session_id: str | None, user_id: str, issued_at: int) -> bool:
    """The reference check (services and tests); the gateway folds it into its one Lua call."""
    keys = [user_key(user_id)] + ([session_key(session_id)] if session_id else [])
    values = await redis.mget(keys)
    not_before = values[0]
    if not_before is not None and issued_at < int(not_before):
        return True
    return len(values) > 1 and values[1] is not None
