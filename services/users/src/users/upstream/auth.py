"""auth's internal API, as users calls it: ending a user's sessions on the request path.

A password change or a deactivation must end the user's sessions within 5 seconds (API.md §2).
The `user.password_changed` / `user.deactivated` events do it, but they travel through the outbox
and the broker: under load they wait behind a backlog (tokens were still accepted 5.5–10 s after
a change), and with the broker down they do not travel at all. So users also tells auth directly,
once its transaction has committed (`common.db.after_commit`) and before it answers: the 204 then
means the other sessions are already refused at the gateway. If auth cannot be reached or refuses,
that is logged and the request still succeeds; the event, written in the same transaction as the
change, ends the sessions later. auth handles both with the same idempotent rule, so the two
arriving in either order end the same sessions.

users authenticates as the built-in service client `users` (`INTERNAL_CLIENT_SECRET`, the
client_credentials grant at auth's token endpoint, `audience=auth`, scope `sessions:end`) and
keeps the token until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime
from typing import Literal

import httpx

logger = logging.getLogger("gatehouse.users.auth")

CLIENT_ID = "users"
AUDIENCE = "auth"
SCOPE = "sessions:end"
TOKEN_PATH = "/api/v1/auth/token"
# Fetch a new service token this long before the cached one expires.
TOKEN_RENEW_MARGIN_SECONDS = 60
# The caller's answer waits for this call: bounded well inside the 5 s the contract allows.
TIMEOUT = httpx.Timeout(2.0, connect=1.0)

EndReason = Literal["password_changed", "deactivated"]


class SessionsNotEnded(Exception):
    """auth did not confirm; the account event will end the sessions instead."""


class AuthSessionsClient:
    def __init__(self, http: httpx.AsyncClient, client_secret: str) -> None:
        self.http = http
        self._secret = client_secret
        self._token: str | None = None
        self._token_expires = 0.0
        self._fetching = asyncio.Lock()

    async def end_user_sessions(
        self, user_id: uuid.UUID, reason: EndReason, changed_at: datetime
    ) -> None:
        """Ask auth to end every session of the user opened before `changed_at`. Never raises:
        a failure is logged, and the event written with the change is the backup."""
        try:
            await self._end(user_id, reason, changed_at)
        except (httpx.HTTPError, SessionsNotEnded) as exc:
            logger.warning(
                "sessions not ended at auth on the request path (%s: %s); the %s event will",
                type(exc).__name__,
                exc,
                reason,
                extra={"user_id": str(user_id)},
            )

    async def _end(self, user_id: uuid.UUID, reason: EndReason, changed_at: datetime) -> None:
        body = {"reason": reason, "changed_at": changed_at.isoformat()}
        path = f"/internal/v1/users/{user_id}/sessions/end"
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {await self._service_token()}"}
            response = await self.http.post(path, json=body, headers=headers)
            if response.status_code == 401 and attempt == 0:
                self._token = None  # expired early or signed by a key auth retired: once more
                continue
            if response.status_code != 200:
                raise SessionsNotEnded(f"auth answered {response.status_code}")
            return

    async def _service_token(self) -> str:
        async with self._fetching:
            if self._token is not None and time.monotonic() < self._token_expires:
                return self._token
            response = await self.http.post(
                TOKEN_PATH,
                data={"grant_type": "client_credentials", "audience": AUDIENCE, "scope": SCOPE},
                auth=(CLIENT_ID, self._secret),
            )
            if response.status_code != 200:
                raise SessionsNotEnded(f"no service token: auth answered {response.status_code}")
            try:
                body = response.json()
                token, lifetime = str(body["access_token"]), int(body["expires_in"])
            except (ValueError, KeyError, TypeError) as exc:
                raise SessionsNotEnded("no service token: unexpected answer") from exc
            self._token = token
            self._token_expires = time.monotonic() + max(0, lifetime - TOKEN_RENEW_MARGIN_SECONDS)
            return token
