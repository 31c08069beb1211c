"""The first admin: from BOOTSTRAP_ADMIN_* at start, or `python -m users create-admin`.

Anyone may register a username (or an address) before an operator picks it for the admin, so an
existing account is never promoted for holding the name. The command promotes an existing account
only when it proves to be the operator's own — the email *and* the password given match it — or
when the operator names the account by id (`--promote-existing <id>`) after checking it.
"""

from __future__ import annotations

import logging
import uuid

from common.db import Database
from common.errors import Conflict
from common.identity import canonical_name

from users.accounts import repository, service
from users.accounts.schemas import UserCreate
from users.accounts.service import Accounts
from users.models import User
from users.passwords.hashing import PasswordHasher

logger = logging.getLogger("gatehouse.users.bootstrap")


class AdminNotCreated(Exception):
    """Another account holds the admin's email or username, or the account to promote is not
    there."""


def _not_promoted(holder: User, name: str) -> AdminNotCreated:
    return AdminNotCreated(
        f"the username {name} belongs to account {holder.id}, whose email and password are not "
        "the ones given; it is not promoted. Choose another username, or — only after checking "
        "that this account is really yours — run "
        f"`python -m users create-admin --promote-existing {holder.id}`"
    )


async def ensure_admin(
    accounts: Accounts, data: UserCreate, *, promote_matching: bool
) -> tuple[User, str]:
    """The admin account `data.username`, created if missing; idempotent. An existing account
    that is already an admin is left as it is; one that is not is promoted only with
    `promote_matching` and only when `data`'s email and password are its own. Returns the
    account and what was done: "created", "promoted" or "unchanged"."""
    db, hasher = accounts.db, accounts.hasher
    existing = await repository.by_login(db, data.username)
    if existing is None:
        if await repository.taken(db, email=data.email, username=None, other_than=None):
            raise AdminNotCreated(f"another account already uses {data.email}")
        user = await accounts.register(data, roles=[service.DEFAULT_ROLE, service.ADMIN_ROLE])
        return user, "created"
    if service.ADMIN_ROLE in existing.role_names:
        return existing, "unchanged"
    if not promote_matching or existing.email_canonical != canonical_name(data.email):
        raise _not_promoted(existing, data.username)
    if (
        not await hasher.verify(data.password, existing.password_hash, kind="account")
        or not existing.is_active
    ):
        raise _not_promoted(existing, data.username)
    await accounts.set_roles(existing, [*existing.role_names, service.ADMIN_ROLE])
    return existing, "promoted"


async def promote_existing(accounts: Accounts, user_id: uuid.UUID) -> tuple[User, bool]:
    """Give the account `user_id` the admin role: the operator's explicit, checked choice."""
    user = await repository.by_id(accounts.db, user_id, lock=True)
    if user is None:
        raise AdminNotCreated(f"there is no account {user_id}")
    if not user.is_active:
        raise AdminNotCreated(f"account {user_id} is deactivated")
    if service.ADMIN_ROLE in user.role_names:
        return user, False
    await accounts.set_roles(user, [*user.role_names, service.ADMIN_ROLE])
    return user, True


async def bootstrap_admin(database: Database, hasher: PasswordHasher, data: UserCreate) -> None:
    """Create the BOOTSTRAP_ADMIN_* account if missing (the settings have already refused details
    the account rules would). Never promotes an existing account: anyone may register a username
    before the operator configures it as the admin's. Another account holding the name or address
    is logged and the service runs on (refusing to start would let whoever registered it keep
    every replica down)."""
    try:
        async with database.sessionmaker() as db, db.begin():
            user, outcome = await ensure_admin(Accounts(db, hasher), data, promote_matching=False)
    except AdminNotCreated as exc:
        logger.error("bootstrap admin not created: %s", exc)
        return
    except Conflict:
        logger.info("bootstrap admin created by another replica starting at the same time")
        return
    if outcome != "unchanged":
        logger.warning("bootstrap admin %s is ready", user.username)
