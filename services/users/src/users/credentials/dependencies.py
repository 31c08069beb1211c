"""Builds the per-request `CredentialCheck`."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from fastapi import Depends

from users.credentials.service import CredentialCheck
from users.dependencies import Hasher, Lockout


async def credential_check(db: DbDep, hasher: Hasher, lockout: Lockout) -> CredentialCheck:
    return CredentialCheck(db, hasher, lockout)


CredentialCheckDep = Annotated[CredentialCheck, Depends(credential_check)]
