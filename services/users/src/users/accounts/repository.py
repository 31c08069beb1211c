"""Queries on accounts. Roles (and their permissions) are always loaded in the same query."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from common.db import Database
from common.identity import canonical_name
from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from users.models import Role, User, role_permissions, user_roles


def _with_roles(statement: Select[User], permissions: bool = False) -> Select[User]:
    roles = joinedload(User.roles)
    return statement.options(roles.joinedload(Role.permissions) if permissions else roles)


async def by_id(
    db: AsyncSession, user_id: uuid.UUID, *, permissions: bool = False, lock: bool = False
) -> User | None:
    statement = _with_roles(select(User).where(User.id == user_id), permissions)
    if lock:
        statement = statement.with_for_update(of=User)
    return (await db.scalars(statement)).unique().one_or_none()


# Built once: a statement object caches its own cache key, so executing this one skips both
# building a SELECT and computing its key on every `GET /users/me` (measured: most of the ORM's
# share of that request's CPU).
PROFILE = (
    select(
        User.id,
        User.email,
        User.username,
        User.full_name,
        User.is_active,
        User.email_verified,
        User.pending_email,
        User.created_at,
        user_roles.c.role_name,
    )
    .outerjoin(user_roles, user_roles.c.user_id == User.id)
    .where(User.id == bindparam("user_id"))
    .order_by(user_roles.c.role_name)
)


async def profile(database: Database, user_id: uuid.UUID) -> dict[str, Any] | None:
    """The `UserRead` fields of one user in one indexed query, without the ORM or a session (the
    hot `GET /users/me`, `Database.read_rows`): the primary key lookup joined with the user's
    role names."""
    rows = await database.read_rows(PROFILE, {"user_id": user_id})
    if not rows:
        return None
    first = rows[0]
    return {
        "id": first["id"],
        "email": first["email"],
        "username": first["username"],
        "full_name": first["full_name"],
        "is_active": first["is_active"],
        "email_verified": first["email_verified"],
        "pending_email": first["pending_email"],
        "created_at": first["created_at"],
        "roles": [row["role_name"] for row in rows if row["role_name"] is not None],
    }


# Built once, as PROFILE: the internal authorization auth reads at every refresh, one row per
# (role, permission) pair (a role without permissions: one row, permission null).
AUTHORIZATION = (
    select(
        User.id,
        User.username,
        User.email,
        User.full_name,
        User.is_active,
        User.credentials_changed_at,
        User.email_verified,
        user_roles.c.role_name,
        role_permissions.c.permission_name,
    )
    .outerjoin(user_roles, user_roles.c.user_id == User.id)
    .outerjoin(role_permissions, role_permissions.c.role_name == user_roles.c.role_name)
    .where(User.id == bindparam("user_id"))
    .order_by(user_roles.c.role_name)
)


async def authorization(database: Database, user_id: uuid.UUID) -> dict[str, Any] | None:
    """The internal `Authorization` fields of one user in one indexed query, without the ORM or
    a session (`Database.read_rows`; measured: the ORM's load of roles and permissions was most
    of the CPU users spent on each of auth's refreshes). Roles in name order and permissions
    sorted and unique, as `User.role_names` and `User.permission_names` give them."""
    rows = await database.read_rows(AUTHORIZATION, {"user_id": user_id})
    if not rows:
        return None
    first = rows[0]
    roles = list(dict.fromkeys(row["role_name"] for row in rows if row["role_name"] is not None))
    permissions = {row["permission_name"] for row in rows if row["permission_name"] is not None}
    return {
        "user_id": first["id"],
        "username": first["username"],
        "email": first["email"],
        "full_name": first["full_name"],
        "is_active": first["is_active"],
        "roles": roles,
        "permissions": sorted(permissions),
        "credentials_changed_at": first["credentials_changed_at"],
        "email_verified": first["email_verified"],
    }


async def by_login(db: AsyncSession, login: str) -> User | None:
    """The account whose username or email is `login` (canonical comparison)."""
    key = canonical_name(login)
    if "\x00" in key:
        return None  # no account has one (and PostgreSQL refuses NUL in text)
    statement = _with_roles(
        select(User).where(or_(User.username_canonical == key, User.email_canonical == key)),
        permissions=True,
    )
    return (await db.scalars(statement)).unique().one_or_none()


async def taken(
    db: AsyncSession, *, email: str | None, username: str | None, other_than: uuid.UUID | None
) -> list[str]:
    """Which of `email` / `username` another account already has."""
    conditions = []
    if email is not None:
        conditions.append(User.email_canonical == canonical_name(email))
    if username is not None:
        conditions.append(User.username_canonical == canonical_name(username))
    if not conditions:
        return []
    statement = select(User.email_canonical, User.username_canonical).where(or_(*conditions))
    if other_than is not None:
        statement = statement.where(User.id != other_than)
    fields = []
    for email_key, username_key in (await db.execute(statement)).all():
        if email is not None and email_key == canonical_name(email):
            fields.append("email")
        if username is not None and username_key == canonical_name(username):
            fields.append("username")
    return sorted(set(fields))


async def roles_named(db: AsyncSession, names: list[str]) -> list[Role]:
    statement = select(Role).where(Role.name.in_(names)).options(joinedload(Role.permissions))
    return list((await db.scalars(statement)).unique().all())


async def active_holders_of(db: AsyncSession, role: str) -> set[uuid.UUID]:
    """Ids of the active users holding `role`, read after locking the role's row until the
    transaction ends, so changes that could take the role from its last holders run one at a
    time (two admins removing each other at once cannot both succeed).

    The role row is the only lock taken after the target user's, so this cannot deadlock
    (locking every holder's row would: each transaction already holds its own target).
    `FOR NO KEY UPDATE` leaves foreign-key checks free: granting the role never waits."""
    await db.execute(
        select(Role.name).where(Role.name == role).with_for_update(key_share=True, of=Role)
    )
    statement = (
        select(User.id)
        .join(user_roles, user_roles.c.user_id == User.id)
        .where(user_roles.c.role_name == role, User.is_active.is_(True))
    )
    return set((await db.scalars(statement)).all())


def filtered(is_active: bool | None, role: str | None) -> Select[User]:
    statement = select(User)
    if is_active is not None:
        statement = statement.where(User.is_active.is_(is_active))
    if role is not None:
        statement = statement.where(
            User.id.in_(select(user_roles.c.user_id).where(user_roles.c.role_name == role))
        )
    return statement


async def page(
    db: AsyncSession,
    *,
    limit: int,
    offset: int | None,
    after: tuple[datetime, uuid.UUID] | None,
    is_active: bool | None,
    role: str | None,
) -> tuple[list[User], int]:
    base = filtered(is_active, role)
    total = int(await db.scalar(select(func.count()).select_from(base.subquery())) or 0)
    statement = base.order_by(User.created_at, User.id).limit(limit)
    if after is not None:
        created_at, user_id = after
        statement = statement.where(
            or_(
                User.created_at > created_at, and_(User.created_at == created_at, User.id > user_id)
            )
        )
    if offset:
        statement = statement.offset(offset)
    # Roles for the page in one more query (selectin), never lazily per row.
    statement = statement.options(selectinload(User.roles))
    return list((await db.scalars(statement)).all()), total


async def stream_all(db: AsyncSession, batch: int = 1000) -> AsyncIterator[tuple[object, ...]]:
    """Every user's exported columns in (created_at, id) order, `batch` rows in memory at most."""
    statement = (
        select(User.id, User.email, User.username, User.full_name, User.is_active, User.created_at)
        .order_by(User.created_at, User.id)
        .execution_options(yield_per=batch)
    )
    result = await db.stream(statement)
    async for row in result:
        yield tuple(row)
