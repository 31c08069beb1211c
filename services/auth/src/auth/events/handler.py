"""Account events from users (queue `auth.user-sessions`): end sessions when an account changes.

`user.password_changed` and `user.deactivated` end every session the user opened before the change
and refuse the user's access tokens issued before it (the per-user Redis marker). Handling twice is
harmless, so at-least-once delivery needs no extra bookkeeping. `user.roles_changed` needs no
action: roles are read from users at every refresh (API.md §4), so it is only audited, and so is
`user.updated` (a profile change ends nothing) and `user.email_verified`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

from common.broker import ACCOUNT_SESSIONS, Broker, PermanentFailure, subscribe
from common.db import Database
from common.events import Envelope
from redis.asyncio import Redis

from auth.audit import audit
from auth.clock import Clock
from auth.sessions.service import SessionRevoker
from auth.settings import AuthSettings

logger = logging.getLogger("gatehouse.auth.events")

# What auth does with each event of its subscription (common.broker.ACCOUNT_SESSIONS binds exactly
# these): end the user's sessions, or only audit the change.
ENDING_SESSIONS = {"user.password_changed": "password_changed", "user.deactivated": "deactivated"}
AUDITED_ONLY = frozenset({"user.roles_changed", "user.updated", "user.email_verified"})


async def handle_user_event(
    envelope: Envelope,
    *,
    database: Database,
    redis: Redis,
    settings: AuthSettings,
    clock: Clock,
) -> None:
    user_id = envelope.data.get("user_id")
    if not isinstance(user_id, str) or not user_id or len(user_id) > 64:
        raise PermanentFailure(f"{envelope.type} without a usable user_id")
    reason = ENDING_SESSIONS.get(envelope.type)
    if reason is None:
        audit("account.event", user_id=user_id, event_type=envelope.type)
        return
    # The change time, not the handling time: a late or repeated delivery must not end sessions
    # opened after the change.
    changed_at = min(envelope.occurred_at, clock())
    async with database.sessionmaker() as db, db.begin():
        revoker = SessionRevoker(db, redis, settings, clock)
        revoked = await revoker.end_user_sessions(user_id, reason, changed_at)
    audit("account.sessions_ended", user_id=user_id, event_type=envelope.type, count=len(revoked))


def user_event_handler(
    database: Database, redis: Redis, settings: AuthSettings, clock: Clock
) -> Callable[[Envelope], Awaitable[None]]:
    return partial(
        handle_user_event, database=database, redis=redis, settings=settings, clock=clock
    )


async def consume_user_events(
    broker: Broker, handler: Callable[[Envelope], Awaitable[None]]
) -> None:
    """Wire the handler to the broker (called from the lifespan)."""
    await subscribe(broker, ACCOUNT_SESSIONS, handler)
