"""Keeping Redis's revocation markers complete: auth's database is the source of truth.

Redis may lose every marker at once (a restart without persistence, a failover to an empty
replica). `common.revocation.EPOCH_KEY` tells: it is written only after a complete restore, and
it is lost with the markers. Every replica checks for it at start and every
`REVOCATION_CHECK_SECONDS` (one EXISTS); when it is missing, one replica (a lock in Redis) reads
from the database every session revoked and every per-user not-before time still inside the
longest access-token lifetime, writes their markers, and only then writes the epoch. Until then
the gateway answers token requests with 503 instead of reading "nothing is revoked".

Why the restore cannot miss a revocation:
- a revocation writes its marker before its transaction commits, under a shared advisory lock
  held until the commit (`hold_revocation_lock`); the restore reads under the same lock taken
  exclusively, so it waits for revocations in flight — one whose marker went to the Redis that
  was lost is committed, and read, before the epoch is written;
- a revocation after the restore's read writes its marker to the current Redis itself;
- the restore lock in Redis is written first and checked when the epoch is written (atomically,
  in Lua): if Redis restarted during the restore, the lock is gone, the epoch is not written, and
  the next check starts again;
- writing a marker twice changes nothing, so replicas racing past the lock (it expired) are
  harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from common.db import Database
from common.revocation import (
    abandon_restore,
    begin_restore,
    complete_restore,
    markers_complete,
    restore_markers,
)
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis

from auth.clock import Clock, epoch
from auth.revocation import repository
from auth.settings import AuthSettings

logger = logging.getLogger("gatehouse.auth.revocation")
RESTORES = Counter(
    "gatehouse_auth_revocation_restores_total",
    "Restores of the Redis revocation markers from the database, by outcome (restored: the epoch "
    "was written; interrupted: Redis changed meanwhile, started again).",
    ["outcome"],
)
RESTORE_SECONDS = Histogram(
    "gatehouse_auth_revocation_restore_seconds",
    "How long a complete restore of the revocation markers took (database read and Redis writes).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# Long enough for a restore of a busy half hour; renewed between batches, so only a restorer that
# died holds it this long (meanwhile the gateway keeps failing closed).
RESTORE_LOCK_SECONDS = 30
# The restore waits at most this long for revocations in flight to commit.
RESTORE_DB_LOCK_TIMEOUT_MS = 5000


@dataclass
class MarkerRestorer:
    database: Database
    redis: Redis
    settings: AuthSettings
    clock: Clock

    async def ensure_markers(self) -> bool:
        """Restore the markers if Redis lost them; True when this call restored them."""
        if await markers_complete(self.redis):
            return False
        token = secrets.token_hex(16)
        if not await begin_restore(self.redis, token, RESTORE_LOCK_SECONDS):
            return False  # another replica is restoring
        started = time.monotonic()
        try:
            sessions, users = await self._read()
            done = await restore_markers(
                self.redis, token, RESTORE_LOCK_SECONDS, sessions, users
            ) and await complete_restore(self.redis, token, self.clock().isoformat())
        except BaseException:
            with contextlib.suppress(Exception):
                await abandon_restore(self.redis, token)
            raise
        if not done:
            RESTORES.labels("interrupted").inc()
            logger.warning("revocation markers: Redis changed during the restore; starting again")
            return False
        elapsed = time.monotonic() - started
        RESTORES.labels("restored").inc()
        RESTORE_SECONDS.observe(elapsed)
        logger.warning(
            "revocation markers restored from the database: %d sessions, %d users, %.0f ms",
            len(sessions),
            len(users),
            elapsed * 1000,
        )
        return True

    async def _read(self) -> tuple[list[tuple[str, int]], list[tuple[str, int, int]]]:
        lifetime = self.settings.max_access_token_lifetime
        async with self.database.sessionmaker() as db, db.begin():
            await repository.hold_restore_lock(db, RESTORE_DB_LOCK_TIMEOUT_MS)
            now = self.clock()
            since = now - timedelta(seconds=lifetime)
            revoked = await repository.sessions_revoked_since(db, since)
            not_before = await repository.users_not_before_since(db, since)

        def ttl(moment: datetime) -> int:
            """Until every token issued up to `moment` has expired."""
            return max(1, math.ceil((moment - now).total_seconds()) + lifetime)

        sessions = [(session_id, ttl(at)) for session_id, at in revoked]
        users = [(user_id, epoch(moment), ttl(moment)) for user_id, moment in not_before]
        return sessions, users


async def watch_markers(restorer: MarkerRestorer, interval: float) -> None:
    """The background check of every replica; a failure is logged once, then retried."""
    failing = False
    while True:
        try:
            await restorer.ensure_markers()
        except Exception as exc:  # Redis or the database down: try again at the next tick
            if not failing:
                logger.error(
                    "revocation markers cannot be checked (%s): %s", type(exc).__name__, exc
                )
            failing = True
        else:
            if failing:
                logger.warning("revocation markers can be checked again")
            failing = False
        await asyncio.sleep(interval)
