"""Account changes, each with its event written to the outbox in the same transaction."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.db import Database, after_commit
from common.errors import Conflict, ValidationFailed
from common.events import Envelope, EventType, utcnow
from common.identity import canonical_name
from common.outbox import add_outbox_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from users.accounts import repository
from users.accounts.schemas import UserCreate, UserUpdate
from users.credentials.lockout import end_lockout
from users.models import OutboxEvent, User
from users.passwords.hashing import PasswordHasher
from users.upstream.auth import AuthSessionsClient, EndReason

logger = logging.getLogger("gatehouse.users")

DEFAULT_ROLE = "user"
ADMIN_ROLE = "admin"
EXPORT_COLUMNS = ("id", "email", "username", "full_name", "is_active", "created_at")
# Cells a spreadsheet would read as a formula (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


async def emit(
    db: AsyncSession,
    event_type: EventType,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> None:
    envelope = Envelope(type=event_type, data=data, occurred_at=occurred_at or utcnow())
    await add_outbox_event(db, OutboxEvent, envelope)


def _taken(fields: list[str]) -> Conflict:
    names = " and ".join(fields)
    return Conflict(f"That {names} {'is' if len(fields) == 1 else 'are'} already taken.")


async def _flush_unique(db: AsyncSession) -> None:
    """Flush; a uniqueness race lost to a concurrent request is a 409, not a 500."""
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict("That email or username is already taken.") from exc


@dataclass
class Accounts:
    """The account changes of one request (built by `users.accounts.dependencies`), each with
    its event in the request's transaction. `auth` is None outside a request (the admin
    bootstrap): the event written with a change then tells auth alone."""

    db: AsyncSession
    hasher: PasswordHasher
    auth: AuthSessionsClient | None = None

    async def register(
        self,
        data: UserCreate,
        roles: list[str] | None = None,
        *,
        verification_follows: bool = False,
    ) -> User:
        """`verification_follows`: the caller writes the account's first verification link
        (`users.verification`) in this transaction; the event says so, and the notifier's welcome
        email is then the one that carries the link."""
        db, hasher = self.db, self.hasher
        hasher.refuse_if_full("account")
        taken = await repository.taken(
            db, email=data.email, username=data.username, other_than=None
        )
        if taken:
            raise _taken(taken)
        user = User(
            id=uuid.uuid4(),
            email=data.email,
            email_canonical=canonical_name(data.email),
            username=data.username,
            username_canonical=canonical_name(data.username),
            full_name=data.full_name,
            password_hash=await hasher.hash(data.password, kind="account"),
            is_active=True,
        )
        user.roles = await repository.roles_named(db, roles or [DEFAULT_ROLE])
        db.add(user)
        await _flush_unique(db)
        registered: dict[str, Any] = {
            "user_id": str(user.id),
            "email": user.email,
            "username": user.username,
            "full_name": user.full_name,
        }
        if verification_follows:
            registered["verification_follows"] = True
        await emit(db, "user.registered", registered)
        return user

    async def update_profile(self, user: User, changes: UserUpdate) -> User:
        values = changes.model_dump(exclude_unset=True, exclude_none=True)
        if not values:
            return user
        taken = await repository.taken(
            self.db,
            email=values.get("email"),
            username=values.get("username"),
            other_than=user.id,
        )
        if taken:
            raise _taken(taken)
        if "email" in values:
            user.email, user.email_canonical = values["email"], canonical_name(values["email"])
        if "username" in values:
            user.username = values["username"]
            user.username_canonical = canonical_name(values["username"])
        if "full_name" in values:
            user.full_name = values["full_name"]
        await _flush_unique(self.db)
        await emit(self.db, "user.updated", {"user_id": str(user.id), "changed": sorted(values)})
        return user

    async def change_password(self, user: User, current: str, new: str) -> None:
        if not await self.hasher.verify(current, user.password_hash, kind="account"):
            raise ValidationFailed(
                [{"field": "current_password", "message": "is not the current password"}]
            )
        await self.set_password(user, new)

    async def set_password(self, user: User, new: str) -> None:
        """What every password change does, whoever asked (the owner, or a reset link): the new
        hash, `credentials_changed_at` (auth refuses refreshes of sessions opened before it), the
        event on which auth ends every session of the user, and — once committed — auth told at
        once. A lockout ends with it (`users.credentials.lockout`)."""
        db = self.db
        user.password_hash = await self.hasher.hash(new, kind="account")
        # One instant for the column auth checks at refresh and for the event: both end the
        # sessions opened before it, whichever reaches auth first.
        user.credentials_changed_at = utcnow()
        await db.flush()
        await end_lockout(db, user.id, user.credentials_changed_at)
        await emit(
            db,
            "user.password_changed",
            {"user_id": str(user.id)},
            occurred_at=user.credentials_changed_at,
        )
        self._end_sessions_after_commit(user.id, "password_changed", user.credentials_changed_at)

    async def set_roles(self, user: User, names: Sequence[str]) -> User:
        db = self.db
        wanted = sorted(set(names))
        roles = await repository.roles_named(db, wanted)
        unknown = sorted(set(wanted) - {role.name for role in roles})
        if unknown:
            raise ValidationFailed(
                [{"field": "roles", "message": f"unknown role(s): {', '.join(unknown)}"}]
            )
        before = user.role_names
        if ADMIN_ROLE in before and ADMIN_ROLE not in wanted:
            await self._keep_an_admin(user)
        if before == wanted:
            return user
        user.roles = sorted(roles, key=lambda role: role.name)
        await db.flush()
        await emit(
            db,
            "user.roles_changed",
            {"user_id": str(user.id), "roles": wanted, "previous_roles": before},
        )
        return user

    async def deactivate(self, user: User) -> None:
        if not user.is_active:
            return  # already done: nothing changes, no second event
        if ADMIN_ROLE in user.role_names:
            await self._keep_an_admin(user)
        user.is_active = False
        deactivated_at = utcnow()
        await self.db.flush()
        await emit(
            self.db, "user.deactivated", {"user_id": str(user.id)}, occurred_at=deactivated_at
        )
        self._end_sessions_after_commit(user.id, "deactivated", deactivated_at)

    def _end_sessions_after_commit(
        self, user_id: uuid.UUID, reason: EndReason, changed_at: datetime
    ) -> None:
        """Once the change is committed, and before the client is answered, auth ends the
        user's sessions (users.upstream.auth says why); the event written with the change is the
        backup. After the commit, not before: sessions must not end for a change that then rolls
        back, and auth must not be told of a change another replica cannot see yet."""
        auth = self.auth
        if auth is None:
            return

        async def end() -> None:
            await auth.end_user_sessions(user_id, reason, changed_at)

        after_commit(self.db, end)

    async def _keep_an_admin(self, losing: User) -> None:
        admins = await repository.active_holders_of(self.db, ADMIN_ROLE)
        if not admins - {losing.id}:
            raise Conflict("This is the last active admin; make another admin first.")


def safe_cell(value: object) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


async def export_csv(database: Database) -> AsyncIterator[str]:
    """Every user as CSV rows, in chunks of 500. Not an `Accounts` method: the stream outlives
    the request's transaction, so it reads on a session of its own."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_COLUMNS)
    yield take()
    rows = 0
    async with database.sessionmaker() as db:
        async for row in repository.stream_all(db):
            writer.writerow([safe_cell(value) for value in row])
            rows += 1
            if rows % 500 == 0:
                yield take()
    yield take()
