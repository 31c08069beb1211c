"""The credential check auth calls for every password login (`POST /internal/v1/credentials/
verify`), with the account lockout (`users.credentials.lockout`) where the password is checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from common.errors import Unauthorized
from sqlalchemy.ext.asyncio import AsyncSession

from users.accounts import repository
from users.credentials.lockout import LockoutPolicy
from users.models import User
from users.passwords.hashing import PasswordHasher

logger = logging.getLogger("gatehouse.users")

INCORRECT_CREDENTIALS = "Incorrect username or password."


class WrongPassword(Unauthorized):
    """Every refusal of a login — a wrong password, any password of a locked account, an unknown
    or deactivated account — the same 401, answered after a commit (the router answers it
    through `CommitThenAnswer`): what a wrong password counted must be committed, and every
    refusal commits alike so that none answers sooner (`LockoutPolicy.refuse_unknown`)."""


@dataclass
class CredentialCheck:
    """The password check of one login (built by `users.credentials.dependencies`)."""

    db: AsyncSession
    hasher: PasswordHasher
    lockout: LockoutPolicy

    async def verify(self, login: str, password: str) -> User:
        """The account for `login` + `password`, or one identical 401 for every failure
        (unknown account, wrong password, deactivated, locked out), each costing one bcrypt
        check: the hash is computed before anything else is decided, so a locked account's
        refusal takes as long as a wrong password's."""
        hasher = self.hasher
        hasher.refuse_if_full("login")
        user = await repository.by_login(self.db, login)
        valid = await hasher.verify(password, user.password_hash if user else None, kind="login")
        if user is None or not user.is_active:
            await self.lockout.refuse_unknown(self.db)
            raise WrongPassword(INCORRECT_CREDENTIALS)
        if not await self.lockout.admit(self.db, user, valid):
            raise WrongPassword(INCORRECT_CREDENTIALS)
        if hasher.needs_rehash(user.password_hash):
            user.password_hash = await hasher.hash(password, kind="login")
            logger.info(
                "password rehashed at cost %s", hasher.rounds, extra={"user_id": str(user.id)}
            )
        return user
