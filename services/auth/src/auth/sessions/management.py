"""Sessions as their owner sees them (API.md §10): the list of live sessions, ending one, and
ending every one but the current; an admin (`users:manage`) does the same for another user.

Apart from `service.py`, which opens and refreshes sessions: this is what a person does with the
sessions that exist. Ending goes through `SessionRevoker`, the one way a session ends: the
database row is the record (`sessions.revoked_at`), and the Redis marker the gateway checks is
written before the commit, exactly as for a logout, so the session's access tokens are refused
from the next request and its refresh tokens are dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from common.errors import NotFound
from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit import audit
from auth.clock import Clock
from auth.sessions import repository
from auth.sessions.schemas import SessionRead
from auth.sessions.service import SessionRevoker
from auth.settings import AuthSettings

# The newest sessions listed; older ones still end with "all but the current one".
MAX_LISTED_SESSIONS = 100


class SessionNotFound(NotFound):
    """Not a session of that user: someone else's id is as unknown as an id never issued."""

    def __init__(self) -> None:
        super().__init__("No such session.")


@dataclass
class SessionManager:
    db: AsyncSession
    revoker: SessionRevoker
    settings: AuthSettings
    clock: Clock

    async def live_sessions(self, user_id: str, current: str | None) -> list[SessionRead]:
        """The user's sessions whose refresh token still works (not revoked, not past their
        absolute end nor idle for longer than REFRESH_IDLE_TIMEOUT), newest first."""
        now = self.clock()
        rows = await repository.live_sessions_of_user(
            self.db,
            user_id,
            used_since=now - timedelta(seconds=self.settings.refresh_idle_timeout),
            ending_after=now,
            limit=MAX_LISTED_SESSIONS,
        )
        return [
            SessionRead(
                id=row.id,
                created_at=row.created_at,
                last_used_at=row.last_used_at,
                ip=row.client_ip,
                user_agent=row.user_agent,
                amr=(row.amr or "").split(),
                current=row.id == current,
            )
            for row in rows
        ]

    async def end_session(self, user_id: str, session_id: str, *, actor_id: str) -> None:
        """End one session of `user_id` (ending one already ended changes nothing); any id that
        is not one of theirs is a 404."""
        login_session = await repository.get_login_session(self.db, session_id)
        if login_session is None or login_session.user_id != user_id:
            raise SessionNotFound()
        await self._end("session.ended", user_id, [session_id], session_id, actor_id)

    async def end_other_sessions(self, user_id: str, keep: str | None, *, actor_id: str) -> int:
        """End every session of `user_id` that is not yet revoked (listed or not) but `keep`."""
        live = await repository.live_session_ids_of_user(self.db, user_id, self.clock())
        ending = [session_id for session_id in live if session_id != keep]
        return await self._end("sessions.ended_others", user_id, ending, keep, actor_id)

    async def _end(
        self,
        event: str,
        user_id: str,
        ending: list[str],
        session_id: str | None,
        actor_id: str,
    ) -> int:
        """End `ending`, sessions of `user_id`, for their owner or an admin (`actor_id`), and
        audit it as `event`; returns how many were still live."""
        reason = "ended_by_owner" if actor_id == user_id else "ended_by_admin"
        revoked = await self.revoker.revoke_sessions(ending, reason, user_id=user_id)
        audit(
            event,
            user_id=user_id,
            session_id=session_id,
            client_ip=self.revoker.client_ip,
            actor_id=actor_id,
            reason=reason,
            count=len(revoked),
        )
        return len(revoked)
