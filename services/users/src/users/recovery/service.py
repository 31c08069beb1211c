"""Forgotten passwords (API.md §8): reset links by email, and the reset itself.

`POST /password/forgot` answers before it looks the address up: once the answer is sent, the
lookup, the new link and its event are done by `ResetLinks` on a task of their own, so the answer,
and the time it takes, are the same whether or not an account has the address. The link's clear
token exists only in the `user.password_reset_requested` event (whose outbox row is deleted once
published) and in the email; the table keeps its SHA-256.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from common.db import Database
from common.errors import BadRequest
from common.identity import canonical_name
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from users.accounts import repository
from users.accounts.service import emit, set_password
from users.clock import Clock
from users.models import PasswordResetToken, User
from users.passwords.hashing import PasswordHasher
from users.recovery.tokens import open_link, token_hash, well_formed
from users.upstream.auth import AuthSessionsClient

logger = logging.getLogger("gatehouse.users")

# The answer's last bytes may still be on their way out through the event loop (a socket that
# does not take them at once, an in-process client): the work waits this long so that it never
# delays them, and with them the answer's timing.
AFTER_THE_ANSWER_SECONDS = 0.02
INVALID_LINK = "This reset link is invalid, used or expired; ask for a new one."


class ResetLinks:
    """Issues reset links off the request path, `max_pending` at most at once (beyond that a
    request is dropped with a warning: the gateway's recovery limit keeps honest use far below)."""

    def __init__(
        self, database: Database, clock: Clock, ttl: timedelta, max_pending: int = 256
    ) -> None:
        self.database = database
        self.clock = clock
        self.ttl = ttl
        self.max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, email: str) -> None:
        if len(self._tasks) >= self.max_pending:
            logger.warning("reset link requests are arriving faster than they are issued; dropped")
            return
        task = asyncio.create_task(self._issue(email), name="reset link")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait (10 s at most) for the links being issued (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10.0)

    async def _issue(self, email: str) -> None:
        await asyncio.sleep(AFTER_THE_ANSWER_SECONDS)
        try:
            async with self.database.sessionmaker() as db, db.begin():
                await issue_link(db, email, self.clock, self.ttl)
        except Exception as exc:
            # The type only: a database error's text quotes its parameters (the token).
            logger.error("reset link not issued: %s", type(exc).__name__)


async def issue_link(db: AsyncSession, email: str, clock: Clock, ttl: timedelta) -> bool:
    """A new link for the active account with address `email`, voiding its older links; False
    (and nothing written) when no active account has it."""
    key = canonical_name(email)
    user = await db.scalar(select(User).where(User.email_canonical == key).with_for_update(of=User))
    if user is None or not user.is_active:
        return False
    now = clock()
    token = await open_link(db, user, now, ttl)
    await emit(
        db,
        "user.password_reset_requested",
        {
            "user_id": str(user.id),
            "email": user.email,
            "username": user.username,
            "full_name": user.full_name,
            "token": token,
            "expires_at": (now + ttl).isoformat(),
        },
    )
    return True


async def reset_password(
    db: AsyncSession,
    hasher: PasswordHasher,
    auth: AuthSessionsClient,
    clock: Clock,
    token: str,
    new_password: str,
) -> uuid.UUID:
    """Use the link `token`: the password becomes `new_password` as in a password change (every
    session ends), every open link of the account dies, the address counts as verified. Any
    token that is not an open link of an active account is one 400."""
    if not well_formed(token):
        raise BadRequest(INVALID_LINK)
    # Deleting the row takes it: of two requests with one token, only one finds it.
    used = (
        await db.execute(
            delete(PasswordResetToken)
            .where(PasswordResetToken.token_hash == token_hash(token))
            .returning(PasswordResetToken.user_id, PasswordResetToken.expires_at)
        )
    ).one_or_none()
    if used is None:
        raise BadRequest(INVALID_LINK)
    if used.expires_at <= clock():  # a UTCDateTime column: aware on SQLite too
        raise BadRequest(INVALID_LINK)
    user = await repository.by_id(db, used.user_id, lock=True)
    if user is None or not user.is_active:
        raise BadRequest(INVALID_LINK)
    await db.execute(delete(PasswordResetToken).where(PasswordResetToken.user_id == user.id))
    user.email_verified = True
    await set_password(db, hasher, auth, user, new_password)
    await emit(
        db,
        "user.password_reset",
        {
            "user_id": str(user.id),
            "email": user.email,
            "username": user.username,
            "full_name": user.full_name,
        },
    )
    return user.id


async def link_is_open(db: AsyncSession, clock: Clock, token: str) -> bool:
    """Whether `token` is an open, unexpired reset link (the page's first look; nothing used)."""
    if not well_formed(token):
        return False
    expires_at = await db.scalar(
        select(PasswordResetToken.expires_at).where(
            PasswordResetToken.token_hash == token_hash(token)
        )
    )
    return expires_at is not None and expires_at > clock()
