"""The public users API (API.md §1): registration, the caller's account, administration."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from common.db import SessionDep
from common.errors import Unauthorized, ValidationFailed
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
from users.accounts.schemas import (
    ROLE_NAME_PATTERN,
    PasswordChange,
    RolesUpdate,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from users.dependencies import (
    MANAGE_PERMISSION,
    READ_PERMISSION,
    AuthSessions,
    Hasher,
    Me,
    visible_user,
)

router = APIRouter(prefix="/api/v1/users", tags=["users"])
Reader = Annotated[Principal, Depends(require_permission(READ_PERMISSION))]
# users:manage and a recent login (API.md §9).
RecentManager = Annotated[Principal, Depends(require_recent_authentication(MANAGE_PERMISSION))]


def read(user: object) -> UserRead:
    return UserRead.model_validate(user)


@router.post("/", status_code=status.HTTP_201_CREATED, response_model=UserRead)
async def register(data: UserCreate, session: SessionDep, hasher: Hasher) -> UserRead:
    """Create an account with the `user` role; a welcome email follows."""
    return read(await service.register(session, hasher, data))


@router.get("/me", response_model=UserRead)
async def read_me(principal: CurrentPrincipal, session: SessionDep) -> UserRead:
    """Your own account (the hottest route: one indexed query, no ORM objects)."""
    fields = await repository.profile(session, principal.user_id)
    if fields is None or not fields["is_active"]:
        raise Unauthorized("This account no longer exists or is deactivated.", token_presented=True)
    return UserRead.model_construct(**fields)


@router.patch("/me", response_model=UserRead)
async def update_me(
    changes: UserUpdate, me: Me, principal: CurrentPrincipal, request: Request, session: SessionDep
) -> UserRead:
    """Change your own `full_name`, `email` or `username`; nothing else can be set here. An
    `email` needs a recent login (401 `insufficient_user_authentication` otherwise)."""
    if "email" in changes.model_fields_set:
        ensure_recent_authentication(request, principal)
    return read(await service.update_profile(session, me, changes))


@router.put("/me/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    change: PasswordChange, me: Me, session: SessionDep, hasher: Hasher, auth: AuthSessions
) -> Response:
    """Change your password; every session of yours ends (at once, through auth)."""
    await service.change_password(
        session, hasher, auth, me, change.current_password, change.new_password
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def encode_cursor(user: UserRead) -> str:
    raw = f"{user.created_at.isoformat()}|{user.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, user_id = raw.partition("|")
        return datetime.fromisoformat(created_at), uuid.UUID(user_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed([{"field": "cursor", "message": "is not a valid cursor"}]) from exc


@router.get("/", response_model=UserPage)
async def list_users(
    _reader: Reader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    is_active: bool | None = None,
    role: Annotated[str | None, Query(max_length=64, pattern=ROLE_NAME_PATTERN)] = None,
) -> UserPage:
    """Users in creation order. Page with `offset`, or — stable while users are being added —
    with the `next_cursor` of the previous page."""
    if cursor is not None and offset is not None:
        raise ValidationFailed([{"field": "cursor", "message": "use either offset or cursor"}])
    after = decode_cursor(cursor) if cursor is not None else None
    users, total = await repository.page(
        session, limit=limit, offset=offset, after=after, is_active=is_active, role=role
    )
    items = [read(user) for user in users]
    next_cursor = encode_cursor(items[-1]) if len(items) == limit else None
    return UserPage(
        items=items,
        total=total,
        limit=limit,
        offset=None if cursor is not None else (offset or 0),
        next_cursor=next_cursor,
    )


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "Every user, streamed."}},
)
async def export_users(_reader: Reader, request: Request) -> StreamingResponse:
    """All users as CSV, streamed from the database in constant memory."""
    # The stream outlives this function, so it owns its session (closed when the stream ends).
    return StreamingResponse(
        service.export_csv(request.app.state.db),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="users.csv"'},
    )


@router.get("/{user_id}", response_model=UserRead)
async def read_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> UserRead:
    """Yourself, or anyone with `users:read`; any other id is a 404."""
    return read(await visible_user(session, principal, user_id))


@router.put("/{user_id}/roles", response_model=UserRead)
async def set_roles(
    user_id: uuid.UUID, update: RolesUpdate, principal: RecentManager, session: SessionDep
) -> UserRead:
    """Replace the user's roles (needs a recent login); takes effect at their next refresh."""
    user = await visible_user(session, principal, user_id, manage=True)
    return read(await service.set_roles(session, user, update.roles))


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deactivate_user(
    user_id: uuid.UUID, principal: RecentPrincipal, session: SessionDep, auth: AuthSessions
) -> Response:
    """Deactivate yourself, or anyone with `users:manage` (either needs a recent login):
    sessions end, login is refused."""
    user = await visible_user(session, principal, user_id, manage=True)
    await service.deactivate(session, auth, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
