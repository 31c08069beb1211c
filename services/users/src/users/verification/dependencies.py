"""What the verification routes (JSON and pages) take from the app, and the per-request
`Verification`."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from fastapi import Depends

from users.state import UsersStateDep
from users.verification.service import Verification, VerificationLinks


def get_links(state: UsersStateDep) -> VerificationLinks:
    return state.verification_links


Links = Annotated[VerificationLinks, Depends(get_links)]


async def verification(db: DbDep, links: Links) -> Verification:
    return Verification(db, links)


VerificationDep = Annotated[Verification, Depends(verification)]
