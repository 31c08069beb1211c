"""The soak's traffic: accounts with their live sessions, every token of every ended session, and
the kinds of traffic, one small function each.

A new kind of traffic is one function registered with `@flow(weight)`: it leases an account (or
makes one), sends its requests with `traffic.call(route, ...)` (which records status and latency)
and says what became of the account's sessions. Accounts are leased one flow at a time, so the
soak's own requests never race each other on one account; what the platform does with them is
then the only thing measured.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.soak.infra import Mail

REGISTER = "/api/v1/users/"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
PASSWORD = "/api/v1/users/me/password"
FORGOT = "/api/v1/users/password/forgot"
RESET = "/api/v1/users/password/reset"
RESET_LINK_WAIT = 30.0

# Password change ends every session "within 5 seconds" (API.md §2); logout "from the next request".
PASSWORD_CHANGE_GRACE = 5.0
LOGOUT_GRACE = 0.0
MAX_SESSIONS = 3


@dataclass(frozen=True, slots=True)
class Sample:
    route: str
    start: float  # monotonic
    end: float
    status: int  # 0: no answer (connection error or timeout)


@dataclass
class Session:
    access: list[tuple[str, float]]  # every access token issued to it: (token, expires at)
    refresh: str
    rotated: list[str] = field(default_factory=list)  # its earlier refresh tokens

    @property
    def token(self) -> str:
        return self.access[-1][0]

    @property
    def expiring(self) -> bool:
        return self.access[-1][1] - time.monotonic() < 60


@dataclass
class Account:
    email: str
    username: str
    password: str
    sessions: list[Session] = field(default_factory=list)
    busy: bool = False
    password_changed_at: float | None = None  # wall clock, when the 204 came


@dataclass
class EndedToken:
    kind: str  # "access" | "refresh"
    token: str
    reason: str  # "logout" | "password change"
    ended_at: float
    probe_after: float
    probes: int = 0


@dataclass(frozen=True)
class Acceptance:
    """An ended token the platform accepted again: a defect, always reported."""

    kind: str
    reason: str
    seconds_after_end: float
    at: float
    status: int


@dataclass(frozen=True)
class Refusal:
    route: str
    at: float
    status: int
    note: str  # for a token: when it was issued relative to the account's password change
    said: str  # the problem's title and detail (why the platform refused)


def why(response: httpx.Response) -> str:
    """What a 5xx said: the problem's title and detail, or the first words of an HTML page (the
    load balancer's own answers)."""
    text = response.text[:300]
    try:
        body = json.loads(text) if text.startswith("{") else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        said = f"{body.get('title', '')}: {body.get('detail', '')}".strip(": ")
    else:
        said = " ".join(text.replace("<", " <").split())[:80]
    return f"{response.status_code} {said[:100]}"


def issued_at(token: str) -> float | None:
    """The `iat` of a JWT, read without verifying (only to describe a refusal)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["iat"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


Flow = Callable[["Traffic"], Awaitable[None]]
FLOWS: dict[str, tuple[float, Flow, str | None]] = {}


def flow(weight: float, needs: str | None = None) -> Callable[[Flow], Flow]:
    """Register a kind of traffic, drawn with this relative weight (only where the build offers
    `needs`, when given: see `discover`)."""

    def register(function: Flow) -> Flow:
        FLOWS[function.__name__] = (weight, function, needs)
        return function

    return register


def new_password() -> str:
    return f"soak {uuid.uuid4().hex} passphrase"


def pair(body: Any) -> Session:
    expires = time.monotonic() + float(body.get("expires_in", 900))
    return Session(access=[(body["access_token"], expires)], refresh=body["refresh_token"])


class Traffic:
    def __init__(self, base_url: str, sources: int, mail: Mail, timeout: float = 20.0) -> None:
        self.base_url = base_url
        self.mail = mail
        # Kinds of traffic this build offers beyond the first ones (found out by `discover`).
        self.offered: dict[str, str] = {}
        self.not_offered: dict[str, str] = {}
        # One client per loopback source address, so the per-IP limits see many clients.
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url,
                timeout=timeout,
                transport=httpx.AsyncHTTPTransport(local_address=f"127.0.1.{index + 1}"),
                # Idle connections dropped before uvicorn's 5 s keep-alive timeout: a request
                # sent just as the server closes one would fail for the harness's own reasons.
                limits=httpx.Limits(
                    max_connections=32, max_keepalive_connections=8, keepalive_expiry=2.0
                ),
            )
            for index in range(sources)
        ]
        self.samples: list[Sample] = []
        self.accounts: list[Account] = []
        self.ended: list[EndedToken] = []
        self.accepted: list[Acceptance] = []
        self.registered: dict[str, float] = {}  # email → when its 201 came
        self.uncertain: set[str] = set()  # registrations whose outcome is unknown (5xx, no answer)
        self.ended_sessions: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()  # flows that found no account to lease
        self.refused_live: list[Refusal] = []
        self.abandoned: Counter[str] = Counter()  # sessions/accounts dropped after an unknown end
        self.harness_errors: Counter[str] = Counter()
        self.failure_reasons: Counter[tuple[str, str]] = Counter()  # (route, what the 5xx said)
        # Resets asked for (202) whose link had not arrived within RESET_LINK_WAIT: (address, when
        # the 202 came); the report looks again after the traffic (late, or never sent).
        self.unseen_links: list[tuple[str, float]] = []
        self.forgot_accepted: Counter[str] = Counter()  # address → forgot requests answered 202

    def client(self, account: Account | None = None) -> httpx.AsyncClient:
        if account is None:
            return random.choice(self.clients)
        return self.clients[hash(account.username) % len(self.clients)]

    async def call(
        self,
        route: str,
        method: str,
        path: str,
        *,
        account: Account | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        start = time.monotonic()
        try:
            response = await self.client(account).request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            self.samples.append(Sample(route, start, time.monotonic(), 0))
            self.failure_reasons[(route, f"no answer: {type(exc).__name__}")] += 1
            return None
        self.samples.append(Sample(route, start, time.monotonic(), response.status_code))
        if response.status_code >= 500:
            self.failure_reasons[(route, why(response))] += 1
        return response

    @contextlib.asynccontextmanager
    async def lease(
        self, name: str, wanted: Callable[[Account], bool]
    ) -> AsyncIterator[Account | None]:
        """An idle account for which `wanted` holds (None when there is none), held by this flow
        alone until the block ends."""
        candidates = [a for a in self.accounts if not a.busy and wanted(a)]
        if not candidates:
            self.skipped[name] += 1
            yield None
            return
        account = random.choice(candidates)
        account.busy = True
        try:
            yield account
        finally:
            account.busy = False

    def end_session(self, session: Session, reason: str, grace: float) -> None:
        now = time.monotonic()
        self.ended_sessions[reason] += 1
        tokens = [("access", token) for token, _ in session.access]
        tokens += [("refresh", session.refresh)] + [("refresh", old) for old in session.rotated]
        for kind, token in tokens:
            self.ended.append(EndedToken(kind, token, reason, now, now + grace))

    def refused(
        self,
        route: str,
        response: httpx.Response,
        account: Account | None = None,
        token: str | None = None,
    ) -> None:
        """A live token or a right password refused: recorded (with 401/403 only), with what the
        answer said and how long after the account's last password change the token was issued."""
        status = response.status_code
        if status not in (401, 403):
            return
        note = ""
        issued = issued_at(token) if token else None
        changed = account.password_changed_at if account is not None else None
        if changed is not None and issued is not None:
            same = (
                "the same second as" if int(issued) == int(changed) else "a different second from"
            )
            note = (
                f"token iat {issued:.0f}, {same} the account's last password change "
                f"(its 204 came at {changed:.2f})"
            )
        self.refused_live.append(Refusal(route, time.monotonic(), status, note, why(response)))

    async def login(self, account: Account) -> Session | None:
        response = await self.call(
            "login",
            "POST",
            LOGIN,
            account=account,
            data={"username": account.username, "password": account.password},
        )
        if response is None or response.status_code != 200:
            if response is not None:
                self.refused("login", response)
            return None
        session = pair(response.json())
        account.sessions.append(session)
        return session

    async def refresh(self, account: Account, session: Session) -> bool:
        response = await self.call(
            "refresh", "POST", REFRESH, account=account, json={"refresh_token": session.refresh}
        )
        if response is not None and response.status_code == 200:
            body = response.json()
            session.rotated.append(session.refresh)
            session.refresh = body["refresh_token"]
            session.access.append(
                (body["access_token"], time.monotonic() + float(body.get("expires_in", 900)))
            )
            return True
        # Unknown (no answer, 5xx) or refused: the session may or may not have rotated.
        account.sessions.remove(session)
        self.abandoned["session after a failed refresh"] += 1
        if response is not None:
            self.refused("refresh", response)
        return False

    # -- probing ended tokens ---------------------------------------------------------------

    def probe_sample(self, count: int) -> list[EndedToken]:
        """Ended access tokens: never-probed ones first (oldest first), then a random sample of
        the rest. (Refresh tokens wait for the final sweep: presenting one makes auth revoke its
        session again, which could rewrite a lost marker and hide that it was lost.)"""
        now = time.monotonic()
        due = [t for t in self.ended if t.kind == "access" and t.probe_after <= now]
        fresh = [t for t in due if t.probes == 0][: max(1, count // 2)]
        rest = [t for t in due if t.probes > 0]
        return fresh + random.sample(rest, min(len(rest), count - len(fresh)))

    async def sweep(self, kind: str, concurrency: int = 8) -> int:
        """Probe every ended token of `kind` once more; how many were probed."""
        slots = asyncio.Semaphore(concurrency)
        tokens = [t for t in self.ended if t.kind == kind]

        async def one(token: EndedToken) -> None:
            async with slots:
                await self.probe(token)

        await asyncio.gather(*(one(token) for token in tokens))
        return len(tokens)

    async def probe(self, ended: EndedToken) -> None:
        ended.probes += 1
        if ended.kind == "access":
            response = await self.call("probe ended access", "GET", ME, token=ended.token)
        else:
            response = await self.call(
                "probe ended refresh", "POST", REFRESH, json={"refresh_token": ended.token}
            )
        if response is not None and response.is_success:
            now = time.monotonic()
            self.accepted.append(
                Acceptance(
                    ended.kind, ended.reason, now - ended.ended_at, now, response.status_code
                )
            )
            if ended.kind == "refresh":  # what it gave out belongs to an ended session too
                self.end_session(pair(response.json()), ended.reason + " (reissued)", 0.0)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


# -- the kinds of traffic --------------------------------------------------------------------


@flow(weight=1.0)
async def register(traffic: Traffic) -> None:
    tag = uuid.uuid4().hex[:12]
    account = Account(f"soak.{tag}@example.org", f"soak_{tag}", new_password(), busy=True)
    response = await traffic.call(
        "register",
        "POST",
        REGISTER,
        account=account,
        json={
            "email": account.email,
            "username": account.username,
            "password": account.password,
            "full_name": "Soak User",
        },
    )
    if response is None or response.status_code >= 500:
        traffic.uncertain.add(account.email)
        return
    if response.status_code != 201:
        return
    traffic.registered[account.email] = time.monotonic()
    traffic.accounts.append(account)
    try:
        await traffic.login(account)
    finally:
        account.busy = False


@flow(weight=1.0)
async def login(traffic: Traffic) -> None:
    async with traffic.lease("login", lambda a: len(a.sessions) < MAX_SESSIONS) as account:
        if account is not None:
            await traffic.login(account)


@flow(weight=6.0)
async def me(traffic: Traffic) -> None:
    async with traffic.lease("me", lambda a: bool(a.sessions)) as account:
        if account is None:
            return
        session = random.choice(account.sessions)
        if session.expiring and not await traffic.refresh(account, session):
            return
        response = await traffic.call("me", "GET", ME, account=account, token=session.token)
        if response is not None and response.status_code != 200:
            traffic.refused("me", response, account, session.token)


@flow(weight=2.0)
async def refresh(traffic: Traffic) -> None:
    async with traffic.lease("refresh", lambda a: bool(a.sessions)) as account:
        if account is not None:
            await traffic.refresh(account, random.choice(account.sessions))


@flow(weight=0.7)
async def logout(traffic: Traffic) -> None:
    async with traffic.lease("logout", lambda a: bool(a.sessions)) as account:
        if account is None:
            return
        session = random.choice(account.sessions)
        account.sessions.remove(session)
        response = await traffic.call(
            "logout",
            "POST",
            LOGOUT,
            account=account,
            token=session.token,
            json={"refresh_token": session.refresh},
        )
        if response is not None and response.status_code == 204:
            traffic.end_session(session, "logout", LOGOUT_GRACE)
        else:
            traffic.abandoned["session after a failed logout"] += 1
            if response is not None:
                traffic.refused("logout", response)


@flow(weight=0.5)
async def change_password(traffic: Traffic) -> None:
    """Refresh, then change the password at once: the fresh access token and the change fall in
    the same second, as they do for a user who has just signed in."""
    async with traffic.lease("change_password", lambda a: bool(a.sessions)) as account:
        if account is None:
            return
        session = random.choice(account.sessions)
        if not await traffic.refresh(account, session):
            return
        password = new_password()
        response = await traffic.call(
            "change password",
            "PUT",
            PASSWORD,
            account=account,
            token=session.token,
            json={"current_password": account.password, "new_password": password},
        )
        if response is None or response.status_code >= 500:
            traffic.accounts.remove(account)  # its password is now unknown
            traffic.abandoned["account after a failed password change"] += 1
            return
        if response.status_code != 204:
            traffic.refused("change password", response)
            return
        account.password = password
        account.password_changed_at = time.time()
        for ended in account.sessions:
            traffic.end_session(ended, "password change", PASSWORD_CHANGE_GRACE)
        account.sessions = []
        await traffic.login(account)


@flow(weight=0.3, needs="reset")
async def reset_password(traffic: Traffic) -> None:
    """Forgot → the link from the email → reset (API.md §8): every session ends, the used link
    must not work twice."""
    async with traffic.lease("reset_password", lambda a: True) as account:
        if account is None:
            return
        known = len(traffic.mail.reset_tokens.get(account.email, []))
        response = await traffic.call(
            "forgot password", "POST", FORGOT, account=account, json={"email": account.email}
        )
        if response is None or response.status_code != 202:
            return
        accepted = time.monotonic()
        traffic.forgot_accepted[account.email] += 1
        deadline = accepted + RESET_LINK_WAIT
        while len(traffic.mail.reset_tokens.get(account.email, [])) <= known:
            if time.monotonic() > deadline:
                traffic.unseen_links.append((account.email, accepted))
                return
            await asyncio.sleep(0.2)
        link = traffic.mail.reset_tokens[account.email][-1]
        password = new_password()
        body = {"token": link, "new_password": password}
        response = await traffic.call("reset password", "POST", RESET, account=account, json=body)
        if response is None or response.status_code >= 500:
            traffic.accounts.remove(account)
            traffic.abandoned["account after a failed reset"] += 1
            return
        if response.status_code != 204:
            traffic.refused("reset password", response)
            return
        account.password = password
        account.password_changed_at = time.time()
        for ended in account.sessions:
            traffic.end_session(ended, "password reset", PASSWORD_CHANGE_GRACE)
        account.sessions = []
        again = await traffic.call(
            "reset link used twice",
            "POST",
            RESET,
            account=account,
            json={"token": link, "new_password": new_password()},
        )
        if again is not None and again.is_success:
            now = time.monotonic()
            traffic.accepted.append(Acceptance("reset link", "reset", 0.0, now, again.status_code))
        await traffic.login(account)


async def discover(traffic: Traffic) -> None:
    """Which optional kinds of traffic this build offers: a reset asked for an unknown address
    answers 202 where password reset exists (a 401/404 where it does not)."""
    response = await traffic.call(
        "forgot password",
        "POST",
        FORGOT,
        json={"email": f"nobody.{uuid.uuid4().hex[:8]}@example.org"},
    )
    if response is not None and response.status_code == 202:
        traffic.offered["reset"] = "password reset (forgot → emailed link → reset)"
    else:
        answer = "no answer" if response is None else str(response.status_code)
        traffic.not_offered["reset"] = f"password reset: POST {FORGOT} answered {answer}"


async def _guarded(traffic: Traffic, name: str) -> None:
    """A flow that raised is the harness's failure, counted, not the platform's."""
    try:
        await FLOWS[name][1](traffic)
    except Exception as exc:  # counted and shown in the report
        traffic.harness_errors[f"{name}: {type(exc).__name__}: {exc}"[:160]] += 1


async def drive(
    traffic: Traffic, rate: float, stop: asyncio.Event, concurrency: int
) -> Counter[str]:
    """Start one flow every 1/rate seconds until `stop` is set, at most `concurrency` at once
    (the flows the harness could not start in time are counted, never silently dropped)."""
    names = [name for name, (_, _, needs) in FLOWS.items() if needs in (None, *traffic.offered)]
    weights = [FLOWS[name][0] for name in names]
    started: Counter[str] = Counter()
    running: set[asyncio.Task[None]] = set()
    begin = time.monotonic()
    index = 0
    while not stop.is_set():
        now = time.monotonic()
        index += 1
        name = random.choices(names, weights)[0]
        if len(running) >= concurrency:
            started["(harness saturated, not started)"] += 1
        else:
            started[name] += 1
            task = asyncio.create_task(_guarded(traffic, name))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.sleep(max(0.0, begin + index / rate - now))
    if running:
        await asyncio.wait(running, timeout=60)
    return started


async def seed(traffic: Traffic, count: int, concurrency: int = 2) -> None:
    """Accounts to start from, registered (and logged in) `concurrency` at a time."""
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            await register(traffic)

    await asyncio.gather(*(one() for _ in range(count)))


async def keep_probing(traffic: Traffic, per_second: float, stop: asyncio.Event) -> None:
    """Probe a sample of the ended tokens, `per_second` of them each second, until `stop`."""
    while not stop.is_set():
        batch = traffic.probe_sample(max(1, round(per_second)))
        await asyncio.gather(*(traffic.probe(token) for token in batch))
        await asyncio.sleep(1.0)
