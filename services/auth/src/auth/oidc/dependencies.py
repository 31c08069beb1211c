"""Builds the per-request `OidcService` and the hosted pages' kit from `AuthState`."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from common.pages import PageKit
from fastapi import Depends, Request

from auth.oidc.service import OidcService
from auth.sessions.dependencies import client_ip
from auth.state import auth_state


async def oidc_service(request: Request, db: DbDep) -> OidcService:
    state = auth_state(request)
    return OidcService(db, state.settings, state.clock, state.users, client_ip(request))


def page_kit(request: Request) -> PageKit:
    kit: PageKit = auth_state(request).page_kit
    return kit


OidcServiceDep = Annotated[OidcService, Depends(oidc_service)]
PageKitDep = Annotated[PageKit, Depends(page_kit)]
