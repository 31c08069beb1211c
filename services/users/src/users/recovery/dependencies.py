"""What the recovery routes (JSON and pages) take from the app, and the per-request
`PasswordResets`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from users.accounts.dependencies import AccountsDep
from users.recovery.service import PasswordResets, ResetLinks
from users.state import UsersStateDep


def get_links(state: UsersStateDep) -> ResetLinks:
    return state.reset_links


Links = Annotated[ResetLinks, Depends(get_links)]


async def password_resets(accounts: AccountsDep, links: Links) -> PasswordResets:
    return PasswordResets(accounts, links.clock)


PasswordResetsDep = Annotated[PasswordResets, Depends(password_resets)]
