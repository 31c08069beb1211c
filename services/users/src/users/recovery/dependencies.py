"""What the recovery routes (JSON and pages) take from the app, and the per-request
`PasswordResets`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from users.accounts.dependencies import AccountsDep
from users.recovery.service import PasswordResets, ResetLinks


def get_links(request: Request) -> ResetLinks:
    links: ResetLinks = request.app.state.reset_links
    return links


Links = Annotated[ResetLinks, Depends(get_links)]


async def password_resets(accounts: AccountsDep, links: Links) -> PasswordResets:
    return PasswordResets(accounts, links.clock)


PasswordResetsDep = Annotated[PasswordResets, Depends(password_resets)]
