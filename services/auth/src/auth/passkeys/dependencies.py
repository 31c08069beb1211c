"""Builds the per-request `Passkeys` from what the lifespan built (`AuthState`)."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from fastapi import Depends, Request

from auth.passkeys.service import Passkeys
from auth.sessions.dependencies import client_ip
from auth.state import auth_state


async def passkeys(request: Request, db: DbDep) -> Passkeys:
    state = auth_state(request)
    return Passkeys(
        db=db,
        users=state.users,
        settings=state.settings,
        clock=state.clock,
        client_ip=client_ip(request),
    )


PasskeysDep = Annotated[Passkeys, Depends(passkeys)]
