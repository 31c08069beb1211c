"""What the users lifespan builds, in one object (common.state), and the dependency reaching it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from common.db import Database
from common.pages import PageKit
from common.state import state_dependency
from fastapi import Depends

from users.clock import Clock
from users.credentials.lockout import LockoutPolicy
from users.passwords.hashing import PasswordHasher
from users.recovery.service import ResetLinks
from users.upstream.auth import AuthSessionsClient
from users.verification.service import VerificationLinks


@dataclass(frozen=True, slots=True)
class UsersState:
    db: Database
    hasher: PasswordHasher
    clock: Clock
    reset_links: ResetLinks
    verification_links: VerificationLinks
    lockout: LockoutPolicy
    auth_sessions: AuthSessionsClient
    # The pages the emails link to (templates, stylesheet, CSRF): built with the app, which
    # installs its routes; kept here for the routes that render them.
    pages: PageKit


get_state = state_dependency(UsersState)
UsersStateDep = Annotated[UsersState, Depends(get_state)]
