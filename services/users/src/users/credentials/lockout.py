"""Account lockout (API.md §10): LOCKOUT_THRESHOLD failed passwords for one account within 15
minutes, from any number of addresses, refuse its password logins for 1 minute, then 2, 4 … at
most 60 for each further lockout.

Where it lives, and why: users checks the password (`users.credentials.service`), so it sees
every failure of every account whichever replica of auth sent it, and counts it against the
account the check was about — the canonical account (`common.identity.canonical_name`) that
`by_login` found, the one the gateway's login limit keys on, whether the login named it by
username or by email. The state is a row per account in users' database (`login_lockouts`),
changed under its row lock, so every replica of users counts the same failures exactly, and it
survives restarts; users has no Redis, and a counter a Redis restart could forget would hand an
attacker a fresh budget. The gateway's limits (per address and per address + name) bound how
fast one client guesses; this bounds how fast all of them together guess one account's password.

The failures are a sliding window: the times of the failures of the last 15 minutes, at most
LOCKOUT_THRESHOLD of them. Reaching the threshold locks the account and forgets them. While it
is locked, password logins are refused without being counted, by the same statements as a
wrong password's (`LockoutPolicy.admit`), after the same hash. A successful login forgets the
failures and the lockouts (the next lockout is 1 minute again); so does a password change or a
reset (`end_lockout`), which also ends a lock at once. A lockout sends the owner a notice with a
fresh reset link (`user.locked_out`, a secret event: the link's token travels only in it).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from common.events import Envelope, utcnow
from common.outbox import add_outbox_event
from sqlalchemy.ext.asyncio import AsyncSession

from users.audit import audit
from users.clock import Clock
from users.credentials import repository
from users.models import LoginLockout, OutboxEvent, User
from users.recovery.tokens import open_link

LOCKOUT_WINDOW = timedelta(minutes=15)
FIRST_LOCKOUT_MINUTES = 1
MAX_LOCKOUT_MINUTES = 60


def lockout_period(lockouts: int) -> timedelta:
    """How long the `lockouts`-th lockout in a row lasts: 1, 2, 4 … 60 minutes."""
    doublings = min(max(lockouts - 1, 0), 6)  # 2 ** 6 minutes is past the hour already
    return timedelta(minutes=min(FIRST_LOCKOUT_MINUTES * 2**doublings, MAX_LOCKOUT_MINUTES))


def _locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and locked_until > now


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int
    clock: Clock
    # The lifetime of the reset link in the notice (PASSWORD_RESET_TTL_SECONDS).
    reset_link_ttl: timedelta

    async def admit(self, db: AsyncSession, user: User, valid: bool) -> bool:
        """Whether a password login of `user` (the password right or not) goes through; a wrong
        password is counted, and may lock the account.

        Every refusal runs the same statements, whether the password was wrong or the account
        is locked, and whether the password was right or not (the row read, then taken under
        its lock and written): the answer's timing must not tell a locked account from a
        wrong password, nor a right password from a wrong one while locked. Only a right
        password of an account that is not locked is cheaper (one read)."""
        now = self.clock()
        row = await repository.lockout_of(db, user.id)
        if valid and (row is None or not _locked(row.locked_until, now)):
            await self._forget(db, row)
            return True
        row = await repository.locked_lockout_of(db, user.id, now)
        row.updated_at = now
        if _locked(row.locked_until, now):
            await db.flush()  # refused, not counted
            audit("login.refused_locked", user_id=str(user.id), level=logging.WARNING)
            return False
        if valid:  # the lock ended between the two reads
            await self._forget(db, row)
            return True
        await self._count_failure(db, user, row, now)
        return False

    async def refuse_unknown(self, db: AsyncSession) -> None:
        """A login that names no active account: refused by the statements of a counted wrong
        password (`repository.refuse_as_counted`), which change nothing. Without them an unknown
        name's 401 came one read and a commit sooner than an existing account's (its failure
        read, locked, written and committed): ~8 ms under load, telling which names exist."""
        await repository.refuse_as_counted(db, self.clock())

    async def _forget(self, db: AsyncSession, row: LoginLockout | None) -> None:
        """A right password: the failures and lockouts are forgotten (written only when there
        is something to forget)."""
        if row is not None and (row.recent_failures or row.lockouts):
            await repository.delete_lockout(db, row.user_id)

    async def _count_failure(
        self, db: AsyncSession, user: User, row: LoginLockout, now: datetime
    ) -> None:
        since = (now - LOCKOUT_WINDOW).timestamp()
        recent = [moment for moment in row.recent_failures if moment > since]
        recent.append(now.timestamp())
        if len(recent) < self.threshold:
            row.recent_failures = recent[-self.threshold :]
            await db.flush()
            return
        row.lockouts += 1
        row.locked_until = now + lockout_period(row.lockouts)
        row.recent_failures = []
        await db.flush()
        await self._notify(db, user, row.locked_until, now)
        audit(
            "account.locked",
            user_id=str(user.id),
            level=logging.WARNING,
            failures=len(recent),
            lockouts=row.lockouts,
            locked_until=row.locked_until.isoformat(),
        )

    async def _notify(
        self, db: AsyncSession, user: User, locked_until: datetime, now: datetime
    ) -> None:
        token = await open_link(db, user, now, self.reset_link_ttl)
        envelope = Envelope(
            type="user.locked_out",
            occurred_at=utcnow(),
            data={
                "user_id": str(user.id),
                "email": user.email,
                "username": user.username,
                "full_name": user.full_name,
                "locked_until": locked_until.isoformat(),
                "token": token,
                "expires_at": (now + self.reset_link_ttl).isoformat(),
            },
        )
        await add_outbox_event(db, OutboxEvent, envelope)


async def end_lockout(db: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    """The password changed (a reset, or the owner's change): a lock ends at once, and the
    failures and lockouts are forgotten."""
    locked_until = await repository.delete_lockout(db, user_id)
    if _locked(locked_until, now):
        audit("account.unlocked", user_id=str(user_id), reason="password_changed")
