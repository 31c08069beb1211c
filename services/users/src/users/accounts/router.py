"""The public users API (API.md §1): registration, the caller's account, administration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from common.db import DatabaseDep, DbDep, ReadDbDep
from common.errors import Unauthorized, problem_responses
from common.security import (
    CurrentPrincipal,
    Principal,
    RecentPrincipal,
    ensure_recent_authentication,
    require_permission,
    require_recent_authentication,
)
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from users.accounts import repository, service
from users.accounts.dependencies import AccountsDep
from users.accounts.schemas import (
    ROLE_NAME_PATTERN,
    PasswordChange,
    RolesUpdate,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from users.dependencies import MANAGE_PERMISSION, READ_PERMISSION, Me, visible_user
from users.state import UsersStateDep
from users.verification.dependencies import VerificationDep

router = APIRouter(prefix="/api/v1/users", tags=["users"])
Reader = Annotated[Principal, Depends(require_permission(READ_PERMISSION))]
# users:manage and a recent login (API.md §9).
RecentManager = Annotated[Principal, Depends(require_recent_authentication(MANAGE_PERMISSION))]


def to_user_read(user: object) -> UserRead:
    """The API view of a `User` row: never its password hash (UserRead has no such field)."""
    return UserRead.model_validate(user)


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=problem_responses(409),
)
async def register(
    data: UserCreate, accounts: AccountsDep, verification: VerificationDep
) -> UserRead:
    """Create an account with the `user` role; a welcome email follows, with a link that
    verifies the address."""
    user = await accounts.register(data, verification_follows=True)
    await verification.issue_link(user, user.email, "registration")
    return to_user_read(user)


@router.get("/me", response_model=UserRead, responses=problem_responses(401))
async def read_me(principal: CurrentPrincipal, database: DatabaseDep) -> UserRead:
    """Your own account (the hottest route: one indexed query, no ORM objects, no session)."""
    fields = await repository.profile(database, principal.user_id)
    if fields is None or not fields["is_active"]:
        raise Unauthorized("This account no longer exists or is deactivated.", token_presented=True)
    return UserRead.model_construct(**fields)


@router.patch("/me", response_model=UserRead, responses=problem_responses(401, 409))
async def update_me(
    changes: UserUpdate,
    me: Me,
    principal: CurrentPrincipal,
    request: Request,
    accounts: AccountsDep,
    verification: VerificationDep,
) -> UserRead:
    """Change your own `full_name`, `email` or `username`; nothing else can be set here. An
    `email` needs a recent login (401 `insufficient_user_authentication` otherwise) and becomes
    `pending_email`: a link goes to it, a notice to the current address, and `email` changes
    only when the link is used."""
    if "email" in changes.model_fields_set:
        ensure_recent_authentication(request, principal)
    new_email = changes.email
    user = await accounts.update_profile(me, changes.model_copy(update={"email": None}))
    if new_email is not None:
        await verification.change_email(user, new_email)
    return to_user_read(user)


@router.put(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401),
)
async def change_password(change: PasswordChange, me: Me, accounts: AccountsDep) -> Response:
    """Change your password; every session of yours ends (at once, through auth)."""
    await accounts.change_password(me, change.current_password, change.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# A cursor is a position in (created_at, id) order: microseconds since the epoch and the id. Every
# string of this pattern is a position, so the pattern in the document is the whole rule.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9a-f]{32}$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(user: UserRead) -> str:
    micros = (user.created_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{user.id.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    micros, _, user_id = cursor.partition(".")
    return EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=user_id)


@router.get("/", response_model=UserPage, responses=problem_responses(401, 403))
async def list_users(
    _reader: Reader,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
    is_active: bool | None = None,
    role: Annotated[str | None, Query(max_length=64, pattern=ROLE_NAME_PATTERN)] = None,
) -> UserPage:
    """Users in creation order. Page with `offset`, or — stable while users are being added —
    with the `next_cursor` of the previous page (and `offset` skips that many more)."""
    after = decode_cursor(cursor) if cursor is not None else None
    users, total = await repository.page(
        db, limit=limit, offset=offset, after=after, is_active=is_active, role=role
    )
    items = [to_user_read(user) for user in users]
    next_cursor = encode_cursor(items[-1]) if len(items) == limit else None
    return UserPage(
        items=items,
        total=total,
        limit=limit,
        offset=(offset or 0) if cursor is None else offset,
        next_cursor=next_cursor,
    )


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "Every user, streamed."},
        **problem_responses(401, 403),
    },
)
async def export_users(_reader: Reader, state: UsersStateDep) -> StreamingResponse:
    """All users as CSV, streamed from the database in constant memory."""
    # The stream outlives this function, so it owns its session (closed when the stream ends).
    return StreamingResponse(
        service.export_csv(state.db),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="users.csv"'},
    )


# `{user_id:uuid}`: only a UUID names a user, so `/me` and `/export.csv` never reach these routes
# (a DELETE of `/me` is a 405 of that path, not a 422 about a malformed id).
@router.get("/{user_id:uuid}", response_model=UserRead, responses=problem_responses(401, 404))
async def read_user(user_id: uuid.UUID, principal: CurrentPrincipal, db: ReadDbDep) -> UserRead:
    """Yourself, or anyone with `users:read`; any other id is a 404. A deactivated account is
    still readable (`is_active: false`): DELETE deactivates, it does not erase."""
    return to_user_read(await visible_user(db, principal, user_id))


@router.put(
    "/{user_id:uuid}/roles",
    response_model=UserRead,
    responses=problem_responses(401, 403, 404, 409),
)
async def set_roles(
    user_id: uuid.UUID, update: RolesUpdate, principal: RecentManager, accounts: AccountsDep
) -> UserRead:
    """Replace the user's roles (needs a recent login); takes effect at their next refresh."""
    user = await visible_user(accounts.db, principal, user_id, manage=True)
    return to_user_read(await accounts.set_roles(user, update.roles))


@router.delete(
    "/{user_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 409),
)
async def deactivate_user(
    user_id: uuid.UUID, principal: RecentPrincipal, accounts: AccountsDep
) -> Response:
    """Deactivate yourself, or anyone with `users:manage` (either needs a recent login):
    sessions end, login is refused."""
    user = await visible_user(accounts.db, principal, user_id, manage=True)
    await accounts.deactivate(user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
