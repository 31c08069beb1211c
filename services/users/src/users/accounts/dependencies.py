"""Builds the per-request `Accounts` from the request's transaction and the app's clients."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from fastapi import Depends

from users.accounts.service import Accounts
from users.dependencies import AuthSessions, Hasher


async def accounts(db: DbDep, hasher: Hasher, auth: AuthSessions) -> Accounts:
    return Accounts(db, hasher, auth)


AccountsDep = Annotated[Accounts, Depends(accounts)]
