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
from dataclasses import dataclass
from datetime import timedelta

from common.db import Database
from common.errors import BadRequest
from common.identity import canonical_name
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from users.accounts.service import Accounts, emit
from users.clock import Clock
from users.models import PasswordResetToken, User
from users.recovery.tokens import open_link, take_link

logger = logging.getLogger("gatehouse.users")

# The answer's last bytes may still be on their way out through the event loop (a socket that
# does not take them at once, an in-process client): the work waits this long so that it never
# delays them, and with them the answer's timing.
AFTER_THE_ANSWER_SECONDS = 0.02
INVALID_LINK = "This reset link is invalid, used or expired; ask for a new one."


class ResetLinks:
    """Issues reset links off the request path, `max_pending` at most at once (beyond that a
    request is dropped with a warning: the gateway's recovery limit keeps honest use far below).
    Long-lived, not a request service (docs/ARCHITECTURE.md §7): built in `lifespan`, its work
    runs after the request's answer, in transactions of its own."""

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
                await self.issue_link(db, email)
        except Exception as exc:
            # The type only: a database error's text quotes its parameters (the token).
            logger.error("reset link not issued: %s", type(exc).__name__)

    async def issue_link(self, db: AsyncSession, email: str) -> bool:
        """A new link for the active account with address `email`, voiding its older links;
        False (and nothing written) when no active account has it."""
        key = canonical_name(email)
        user = await db.scalar(
            select(User).where(User.email_canonical == key).with_for_update(of=User)
        )
        if user is None or not user.is_active:
            return False
        now = self.clock()
        token = await open_link(db, user, now, self.ttl)
        await emit(
            db,
            "user.password_reset_requested",
            {
                "user_id": str(user.id),
                "email": user.email,
                "username": user.username,
                "full_name": user.full_name,
                "token": token,
                "expires_at": (now + self.ttl).isoformat(),
            },
        )
        return True


@dataclass
class PasswordResets:
    """The reset of one request (built by `users.recovery.dependencies`)."""

    accounts: Accounts
    clock: Clock

    async def reset_password(self, token: str, new_password: str) -> uuid.UUID:
        """Use the link `token`: the password becomes `new_password` as in a password change
        (every session ends), every open link of the account dies, the address counts as
        verified. Any token that is not an open link of an active account is one 400."""
        db = self.accounts.db
        used = await take_link(db, PasswordResetToken, token, self.clock())
        if used is None:
            raise BadRequest(INVALID_LINK)
        user, _ = used
        await db.execute(delete(PasswordResetToken).where(PasswordResetToken.user_id == user.id))
        user.email_verified = True
        await self.accounts.set_password(user, new_password)
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
