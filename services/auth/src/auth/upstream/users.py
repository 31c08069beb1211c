"""The users service's internal API, called with a service token auth signs itself.

Over aiohttp (`AiohttpUsers`, a keep-alive pool): the call at every refresh, where httpx was a
quarter of auth's CPU. Tests hand auth an httpx transport instead (`HttpxUsers`, e.g. an
`httpx.ASGITransport` around a users app): both answer `UsersAnswer`s and raise
`UsersUnreachable`, so `UsersClient` treats users' answers alike whichever carried them."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
import httpx
from common.errors import ServiceUnavailable, Unauthorized

from auth.clock import Clock, epoch
from auth.signing import AccessTokenSigner

logger = logging.getLogger("gatehouse.auth.users")

SERVICE_CLIENT_ID = "auth"
USERS_AUDIENCE = "users"
USERS_SCOPES = ("credentials:verify", "users:authorization")
# Sign a new service token this long before the cached one expires.
TOKEN_RENEW_MARGIN_SECONDS = 60


class UsersUnreachable(Exception):
    """No answer from users: refused, reset, timed out (the cause is chained)."""


@dataclass(frozen=True, slots=True)
class UsersAnswer:
    status_code: int
    # Case-insensitive (aiohttp's and httpx's headers both are): look up lower-case names.
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


class UsersHttp(Protocol):
    """How auth's requests reach users (see the module docstring)."""

    async def request(
        self, method: str, path: str, body: dict[str, str] | None, headers: dict[str, str]
    ) -> UsersAnswer: ...

    async def aclose(self) -> None: ...


class AiohttpUsers:
    """users at `base_url` over aiohttp: keep-alive connections, no cookie jar, `timeout`'s
    connect, pool and read limits. An idle connection is dropped after `keepalive` seconds,
    before uvicorn's 5 s close it from users' side."""

    def __init__(self, base_url: str, timeout: httpx.Timeout, *, keepalive: float = 4.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout.pool,
            sock_connect=timeout.connect,
            sock_read=timeout.read,
        )
        self.keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        # Made at the first call, inside the running loop (aiohttp wants one).
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(keepalive_timeout=self.keepalive),
                timeout=self.timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def request(
        self, method: str, path: str, body: dict[str, str] | None, headers: dict[str, str]
    ) -> UsersAnswer:
        try:
            async with self._opened().request(
                method, self.base_url + path, json=body, headers=headers
            ) as response:
                return UsersAnswer(response.status, response.headers, await response.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UsersUnreachable() from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxUsers:
    """users through an httpx transport (the tests' seam: `create_app(users_transport=...)`)."""

    def __init__(
        self, base_url: str, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout
    ) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)

    async def request(
        self, method: str, path: str, body: dict[str, str] | None, headers: dict[str, str]
    ) -> UsersAnswer:
        try:
            response = await self.http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise UsersUnreachable() from exc
        return UsersAnswer(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        await self.http.aclose()


class UnknownUser(Exception):
    """users does not know the account (404 from the authorization endpoint)."""


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    user_id: str
    username: str
    email: str
    is_active: bool
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    # False too when users does not say (an older users: REQUIRE_VERIFIED_EMAIL then refuses).
    email_verified: bool = False


@dataclass(frozen=True, slots=True)
class Contact:
    """Where auth's own notices to the account go (API.md §12)."""

    user_id: str
    username: str
    email: str
    full_name: str


@dataclass(frozen=True, slots=True)
class UserAuthorization:
    user_id: str
    is_active: bool
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    # When the password last changed (None: never, or a users that does not say yet).
    credentials_changed_at: datetime | None = None
    # None from a users that does not say yet.
    contact: Contact | None = None
    # The OpenID Connect `email_verified` claim (API.md §13); the rest is the contact.
    email_verified: bool = False


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("expected an ISO 8601 time with its UTC offset")
    return moment


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def _success(response: UsersAnswer) -> UsersAnswer:
    if not response.is_success:
        raise ValueError(f"users answered {response.status_code}")
    return response


def _contact(body: dict[str, Any]) -> Contact | None:
    values = [body.get(name) for name in ("username", "email", "full_name")]
    if not all(isinstance(value, str) and value for value in values):
        return None
    username, email, full_name = (str(value) for value in values)
    return Contact(str(body["user_id"]), username, email, full_name)


class UsersClient:
    def __init__(self, http: UsersHttp, signer: AccessTokenSigner, clock: Clock) -> None:
        self.http = http
        self.signer = signer
        self.clock = clock
        self._token: str | None = None
        self._token_expires_at = 0
        self._token_issued_at = 0

    def _service_token(self) -> str:
        now = epoch(self.clock())
        stale = now >= self._token_expires_at - TOKEN_RENEW_MARGIN_SECONDS
        # A clock stepped back would leave a token users sees as issued in the future.
        if self._token is None or stale or now < self._token_issued_at:
            signed = self.signer.service_token(SERVICE_CLIENT_ID, USERS_AUDIENCE, USERS_SCOPES)
            self._token, self._token_expires_at = signed.token, signed.expires_at
            self._token_issued_at = signed.expires_at - signed.expires_in
        return self._token

    async def _call(
        self, method: str, path: str, body: dict[str, str] | None = None
    ) -> UsersAnswer:
        headers = {"Authorization": f"Bearer {self._service_token()}"}
        try:
            response = await self.http.request(method, path, body, headers)
        except UsersUnreachable as exc:
            logger.warning("users unreachable: %s", type(exc.__cause__).__name__)
            raise ServiceUnavailable("The account service is unavailable.") from exc
        rejected_token = "invalid_token" in response.headers.get("www-authenticate", "")
        retry_after = response.headers.get("retry-after", "")
        if response.status_code == 503 and retry_after.isdigit() and len(retry_after) <= 4:
            # users is up but its password hashing is saturated (API.md §11): it said so at once
            # and when to come back; the client is told the same, as quickly.
            raise ServiceUnavailable(
                "Too many logins at once; try again shortly.",
                headers={"Retry-After": retry_after},
            )
        if response.status_code >= 500 or response.status_code == 403 or rejected_token:
            # users down, or refusing auth's own service token: nothing the caller can fix.
            logger.warning("users answered %s on %s", response.status_code, path)
            raise ServiceUnavailable("The account service is unavailable.")
        return response

    async def verify_credentials(self, login: str, password: str) -> VerifiedUser:
        response = await self._call(
            "POST", "/internal/v1/credentials/verify", {"login": login, "password": password}
        )
        if response.status_code == 401:
            raise Unauthorized("Incorrect username or password.")
        try:
            body = _success(response).json()
            return VerifiedUser(
                user_id=str(body["user_id"]),
                username=str(body["username"]),
                email=str(body["email"]),
                is_active=bool(body["is_active"]),
                roles=_strings(body["roles"]),
                permissions=_strings(body["permissions"]),
                email_verified=body.get("email_verified") is True,
            )
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("unexpected answer from users: %s", response.status_code)
            raise ServiceUnavailable("The account service answered unexpectedly.") from exc

    async def authorization(self, user_id: str) -> UserAuthorization:
        response = await self._call("GET", f"/internal/v1/users/{user_id}/authorization")
        if response.status_code == 404:
            raise UnknownUser(user_id)
        try:
            body = _success(response).json()
            return UserAuthorization(
                user_id=str(body["user_id"]),
                is_active=bool(body["is_active"]),
                roles=_strings(body["roles"]),
                permissions=_strings(body["permissions"]),
                credentials_changed_at=_moment(body.get("credentials_changed_at")),
                contact=_contact(body),
                email_verified=body.get("email_verified") is True,
            )
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("unexpected answer from users: %s", response.status_code)
            raise ServiceUnavailable("The account service answered unexpectedly.") from exc

    async def active_account(self, user_id: str) -> UserAuthorization | None:
        """The account's current authorization while it may still sign in or hold a session;
        None when users knows no such account or it is deactivated."""
        try:
            account = await self.authorization(user_id)
        except UnknownUser:
            return None
        return account if account.is_active else None
