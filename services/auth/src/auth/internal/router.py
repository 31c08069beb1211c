"""auth's internal API for the other services (never routed by the gateway; service tokens).

`POST /internal/v1/users/{user_id}/sessions/end` is how users ends a user's sessions on the
request path of a password change or a deactivation. The `user.password_changed` /
`user.deactivated` events do the same, but they travel through the outbox and the broker: under
load they wait behind a backlog (tokens were seen accepted 5–10 s after a change, past the 5 s of
API.md §2), and with the broker down they never arrive. So users calls this first and answers its
client only after it returned; the event stays as the backup for when this call fails.

Both paths run the one session-ending rule, `SessionRevoker.end_user_sessions`, with the change
time users recorded (never later than now): every session opened before the change is revoked
and the per-user "not before" marker is raised. Running it twice, in either order, ends the same
sessions and leaves the same marker, so the call is idempotent and races the event harmlessly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from common.db import DbDep
from common.security import require_service_scope
from common.tokens import AccessClaims
from fastapi import APIRouter, Depends, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict

from auth.audit import audit
from auth.sessions.service import SessionRevoker
from auth.state import auth_state

router = APIRouter(prefix="/internal/v1", tags=["internal"], include_in_schema=False)

END_SESSIONS_SCOPE = "sessions:end"
SessionEnder = Annotated[AccessClaims, Depends(require_service_scope(END_SESSIONS_SCOPE))]
UserId = Annotated[str, Path(min_length=1, max_length=64)]


class SessionsEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["password_changed", "deactivated"]
    # When the change happened (users' record of it): sessions opened after it are spared.
    changed_at: AwareDatetime


class SessionsEnded(BaseModel):
    revoked: int


@router.post("/users/{user_id}/sessions/end", response_model=SessionsEnded)
async def end_user_sessions(
    user_id: UserId, body: SessionsEnd, caller: SessionEnder, db: DbDep, request: Request
) -> SessionsEnded:
    """End every session of the user opened before `changed_at`, at once (idempotent)."""
    state = auth_state(request)
    changed_at = min(body.changed_at, state.clock())
    revoker = SessionRevoker(db, state.redis, state.settings, state.clock)
    revoked = await revoker.end_user_sessions(user_id, body.reason, changed_at)
    audit(
        "account.sessions_ended",
        user_id=user_id,
        client_id=caller.subject,
        reason=body.reason,
        source="request",
        count=len(revoked),
    )
    return SessionsEnded(revoked=len(revoked))
