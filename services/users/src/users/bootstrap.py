"""The first admin: from BOOTSTRAP_ADMIN_* at start, or `python -m users create-admin`."""

from __future__ import annotations

import logging

from common.db import Database
from common.errors import Conflict
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from users.accounts import repository, service
from users.accounts.schemas import UserCreate
from users.models import User
from users.passwords.hashing import PasswordHasher

logger = logging.getLogger("gatehouse.users.bootstrap")


class AdminNotCreated(Exception):
    """The admin's details are invalid, or another account holds its email or username."""


async def ensure_admin(
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    username: str,
    password: str,
    *,
    promote_existing: bool = True,
) -> tuple[User, bool]:
    """The admin account `username`, created (or, with `promote_existing`, given the admin role)
    if needed; idempotent. Returns the account and whether anything changed."""
    try:
        data = UserCreate(email=email, username=username, password=password, full_name=username)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AdminNotCreated(problems) from exc
    existing = await repository.by_login(session, data.username)
    if existing is None:
        if await repository.taken(session, email=data.email, username=None, other_than=None):
            raise AdminNotCreated(f"another account already uses {data.email}")
        user = await service.register(
            session, hasher, data, roles=[service.DEFAULT_ROLE, service.ADMIN_ROLE]
        )
        return user, True
    if service.ADMIN_ROLE in existing.role_names:
        return existing, False
    if not promote_existing:
        raise AdminNotCreated(
            f"the username {data.username} belongs to an account that is not an admin; "
            "it is not promoted (an operator can, with `python -m users create-admin`)"
        )
    await service.set_roles(session, existing, [*existing.role_names, service.ADMIN_ROLE])
    return existing, True


async def bootstrap_admin(
    database: Database, hasher: PasswordHasher, email: str, username: str, password: str
) -> None:
    """Create the BOOTSTRAP_ADMIN_* account if missing. Never promotes an existing account: anyone
    may register a username before the operator configures it as the admin's."""
    try:
        async with database.sessionmaker() as session, session.begin():
            user, changed = await ensure_admin(
                session, hasher, email, username, password, promote_existing=False
            )
    except AdminNotCreated as exc:
        logger.error("bootstrap admin not created: %s", exc)
        return
    except Conflict:
        logger.info("bootstrap admin created by another replica starting at the same time")
        return
    if changed:
        logger.warning("bootstrap admin %s is ready", user.username)
