"""The first admin: from BOOTSTRAP_ADMIN_* at start, or `python -m users create-admin`."""

from __future__ import annotations

import logging

from common.db import Database
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
    session: AsyncSession, hasher: PasswordHasher, email: str, username: str, password: str
) -> tuple[User, bool]:
    """The admin account `username`, created (or given the admin role) if needed; idempotent.
    Returns the account and whether anything changed."""
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
    await service.set_roles(session, existing, [*existing.role_names, service.ADMIN_ROLE])
    return existing, True


async def bootstrap_admin(
    database: Database, hasher: PasswordHasher, email: str, username: str, password: str
) -> None:
    async with database.sessionmaker() as session, session.begin():
        try:
            user, changed = await ensure_admin(session, hasher, email, username, password)
        except AdminNotCreated as exc:
            logger.error("bootstrap admin not created: %s", exc)
            return
    if changed:
        logger.warning("bootstrap admin %s is ready", user.username)
