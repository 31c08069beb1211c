"""The internal API (never routed by the gateway): for auth, with service tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from common.db import CommitThenAnswer, DatabaseDep
from common.errors import NotFound
from common.security import require_service_scope
from common.tokens import AccessClaims
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from users.accounts import repository
from users.credentials.dependencies import CredentialCheckDep
from users.credentials.service import WrongPassword
from users.models import User

router = APIRouter(prefix="/internal/v1", tags=["internal"], include_in_schema=False)
Verifier = Annotated[AccessClaims, Depends(require_service_scope("credentials:verify"))]
Authorizer = Annotated[AccessClaims, Depends(require_service_scope("users:authorization"))]


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(min_length=1, max_length=4096)
    password: str = Field(min_length=1, max_length=4096)


class Authorization(BaseModel):
    user_id: uuid.UUID
    # Who to write to: auth's own notices (MFA on or off, a recovery code used) go to the account.
    username: str
    email: str
    full_name: str
    is_active: bool
    roles: list[str]
    permissions: list[str]
    # When the password last changed (null: never): auth refuses to refresh a session opened
    # before it, so the change ends sessions even when the event is late or the broker down.
    credentials_changed_at: datetime | None
    # With username, email and full_name, the OpenID Connect claims auth puts in ID tokens and
    # UserInfo (API.md §13).
    email_verified: bool


class VerifiedUser(Authorization):
    pass


@router.post("/credentials/verify", response_model=VerifiedUser)
async def verify_credentials(
    credentials: Credentials, _caller: Verifier, check: CredentialCheckDep
) -> VerifiedUser:
    """The account for a login (username or email) and password; one identical 401 otherwise."""
    try:
        user = await check.verify(credentials.login, credentials.password)
    except WrongPassword as refused:
        raise CommitThenAnswer(refused) from None  # the failure counts towards a lockout
    return VerifiedUser.model_validate(_authorization(user).model_dump())


@router.get("/users/{user_id}/authorization", response_model=Authorization)
async def authorization(
    user_id: uuid.UUID, _caller: Authorizer, database: DatabaseDep
) -> Authorization:
    """Current roles and permissions (auth reads them at every refresh: one indexed query, no
    ORM objects, no session)."""
    fields = await repository.authorization(database, user_id)
    if fields is None:
        raise NotFound("No such user.")
    return Authorization.model_construct(**fields)


def _authorization(user: User) -> Authorization:
    return Authorization(
        user_id=user.id,
        username=user.username,
        email=user.email,
        full_name=user.full_name,
        is_active=user.is_active,
        roles=user.role_names,
        permissions=user.permission_names,
        credentials_changed_at=user.credentials_changed_at,
        email_verified=user.email_verified,
    )
