"""Builds the per-request `Clients` from the request's database session and the app's clock."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from fastapi import Depends, Request

from auth.clients.service import Clients
from auth.state import auth_state


async def clients(request: Request, db: DbDep) -> Clients:
    return Clients(db, auth_state(request).clock)


ClientsDep = Annotated[Clients, Depends(clients)]
