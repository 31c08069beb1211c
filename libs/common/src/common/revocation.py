"""The revocation markers auth writes and the gateway reads, in one place.

- `revoked:sid:<sid>` exists → every access token of that session is refused. TTL: the longest
  access-token lifetime (after that the tokens have expired anyway).
- `revoked:user:<user id>` = a UNIX time in whole seconds → the user's access tokens with
  `iat < value` are refused. Written when all of a user's sessions end (password change,
  deactivation).
- `revocation:epoch` exists → the markers above are complete. Redis is only a cache of auth's
  database: a Redis that restarts empty (or a failover to an empty replica) loses the markers and
  this key with them. Auth writes the key only after re-writing, from its database, every marker
  still inside `MAX_ACCESS_TOKEN_SECONDS`; until then the gateway refuses token requests (503),
  because a missing marker would read as "nothing is revoked".

**The comparison rule** (`is_revoked` here and the gateway's guard must agree exactly): a token is
refused when its session marker exists, or when the user marker exists and the token's `iat` is
*strictly less than* it. `iat` has whole-second precision, so for a change at time `c` auth writes
`floor(c)`: that refuses only tokens issued in a second that ended before the change began, and
can never refuse a token issued after the change (issued at `t >= c` means `iat = floor(t) >=
floor(c)`). Tokens issued before the change but in its own second are not caught by the user
marker; they are caught by their session's marker, because ending a user's sessions writes a
session marker for every session opened up to the change. (Writing `floor(c) + 1` instead, as auth
once did, refused every token of a login in the rest of that second for its whole life.)
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


# Restoring the markers after a loss (auth): the lock doubles as a witness of the Redis instance.
# It is written first; if Redis restarts (or fails over) during the restore, the lock is gone with
# the markers already written, and the epoch is not written.
RESTORE_LOCK_KEY = "revocation:restoring"
RESTORE_BATCH = 1000

# KEYS: the restore lock, then the session markers, then the user markers.
# ARGV: the lock token, the lock's seconds, how many session markers, then a TTL per session
# marker, then (not before, TTL) per user marker. A marker already there is left alone: a session
# marker there was written live, with a TTL no shorter; a user marker there is as late or later
# (the database holds the latest), or was raised live after the restore's read.
_WRITE_MARKERS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local sessions = tonumber(ARGV[3])
local arg = 4
for i = 2, sessions + 1 do
  redis.call('SET', KEYS[i], '1', 'EX', ARGV[arg], 'NX')
  arg = arg + 1
end
for i = sessions + 2, #KEYS do
  local current = redis.call('GET', KEYS[i])
  if not current or tonumber(current) < tonumber(ARGV[arg]) then
    redis.call('SET', KEYS[i], ARGV[arg], 'EX', ARGV[arg + 1])
  end
  arg = arg + 2
end
return 1
"""

_COMPLETE_RESTORE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
"""

_ABANDON_RESTORE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


async def markers_complete(redis: Redis) -> bool:
    """Whether Redis still holds every marker (the epoch is there); one cheap EXISTS."""
    return bool(await redis.exists(EPOCH_KEY))


async def begin_restore(redis: Redis, token: str, lock_seconds: int) -> bool:
    """Take the restore lock (one restorer at a time across replicas); False when another has."""
    return bool(await redis.set(RESTORE_LOCK_KEY, token, nx=True, ex=lock_seconds))


async def restore_markers(
    redis: Redis,
    token: str,
    lock_seconds: int,
    sessions: list[tuple[str, int]],
    users: list[tuple[str, int, int]],
) -> bool:
    """Write `(session id, ttl)` and `(user id, not before, ttl)` markers, a batch per Lua call,
    each renewing the lock. False (stop) when the lock is no longer ours: the instance changed or
    another restorer took over. Idempotent: writing a marker twice changes nothing."""
    for start in range(0, max(len(sessions), len(users), 1), RESTORE_BATCH):
        end = start + RESTORE_BATCH
        batch_sessions, batch_users = sessions[start:end], users[start:end]
        keys = [RESTORE_LOCK_KEY]
        keys += [session_key(session_id) for session_id, _ in batch_sessions]
        keys += [user_key(user_id) for user_id, _, _ in batch_users]
        args: list[str | int] = [token, lock_seconds, len(batch_sessions)]
        args += [ttl for _, ttl in batch_sessions]
        for _, not_before, ttl in batch_users:
            args += [not_before, ttl]
        if not await redis.eval(_WRITE_MARKERS, len(keys), *keys, *args):
            return False
    return True


async def complete_restore(redis: Redis, token: str, epoch: str) -> bool:
    """Write the epoch if the lock is still ours (same instance, same restorer), atomically."""
    return bool(await redis.eval(_COMPLETE_RESTORE, 2, RESTORE_LOCK_KEY, EPOCH_KEY, token, epoch))


async def abandon_restore(redis: Redis, token: str) -> None:
    await redis.eval(_ABANDON_RESTORE, 1, RESTORE_LOCK_KEY, token)
