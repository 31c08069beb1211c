"""Request-scoped pieces of the users service."""

from __future__ import annotations

import uuid
from typing import Annotated

from common.db import DbDep
from common.errors import NotFound, Unauthorized
from common.security import CurrentPrincipal, Principal
from fastapi import Depends

from users.accounts import repository
from users.credentials.lockout import LockoutPolicy
from users.models import User
from users.passwords.hashing import PasswordHasher
from users.state import UsersStateDep
from users.upstream.auth import AuthSessionsClient

READ_PERMISSION = "users:read"
MANAGE_PERMISSION = "users:manage"


def get_hasher(state: UsersStateDep) -> PasswordHasher:
    return state.hasher


Hasher = Annotated[PasswordHasher, Depends(get_hasher)]


def get_lockout(state: UsersStateDep) -> LockoutPolicy:
    return state.lockout


Lockout = Annotated[LockoutPolicy, Depends(get_lockout)]


def get_auth_sessions(state: UsersStateDep) -> AuthSessionsClient:
    return state.auth_sessions


AuthSessions = Annotated[AuthSessionsClient, Depends(get_auth_sessions)]


async def get_me(principal: CurrentPrincipal, db: DbDep) -> User:
    user = await repository.by_id(db, principal.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("This account no longer exists or is deactivated.", token_presented=True)
    return user


Me = Annotated[User, Depends(get_me)]


async def visible_user(
    db: DbDep, principal: Principal, user_id: uuid.UUID, *, manage: bool = False
) -> User:
    """The user `user_id` if the caller may see it (self, or the permission), else 404 — never
    403, so ids of other accounts cannot be probed."""
    permission = MANAGE_PERMISSION if manage else READ_PERMISSION
    if user_id != principal.user_id and not principal.can(permission):
        raise NotFound("No such user.")
    user = await repository.by_id(db, user_id, lock=manage)
    if user is None:
        raise NotFound("No such user.")
    return user
