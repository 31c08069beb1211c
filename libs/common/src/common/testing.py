"""Test support shared by the suites (common's, each service's, the platform's) and the bench:

- a fresh PostgreSQL database per test session, migrated with the service's own Alembic history,
  and a session per test inside a transaction that is rolled back afterwards (the app's commits
  only release savepoints);
- the Redis each suite uses (`TEST_REDIS_SERVER`), spare loopback ports, a clock a test moves;
- test access tokens signed by a throwaway key (`TokenFactory`, with the suites' `ISSUER` and
  `AUDIENCE`), and the pieces of forged ones (any header and payload, signed exactly as given);
- an in-test SMTP server (`SmtpSink`, aiosmtpd from the dev dependencies, imported when started);
- a headless Chromium for the browser tests (Debian's `chromium`, driven by Playwright from the
  dev dependencies, imported when launched).

Nothing here runs in production; a suite keeps what only it uses in its own `support.py`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from math import comb
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from common.hot import HotRoute
from common.migrations import upgrade
from common.revocation import EPOCH_KEY
from common.tokens import JwksFetcher

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller
    from fastapi import FastAPI
    from playwright.async_api import Browser
    from starlette.types import ASGIApp, Receive, Scope, Send

# The issuer and audience the suites' tokens carry.
ISSUER = "http://gatehouse.test"
AUDIENCE = "gatehouse-api"

ADMIN_URL_ENV = "TEST_DATABASE_URL"
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)


REDIS_SERVER_ENV = "TEST_REDIS_SERVER"
DEFAULT_REDIS_SERVER = "redis://127.0.0.1:6379"


def redis_url(db: int) -> str:
    """The URL of Redis database `db` for a suite's tests: the machine's Redis, or the server in
    `TEST_REDIS_SERVER` (so two checkouts can run their suites at once without sharing keys)."""
    return f"{os.environ.get(REDIS_SERVER_ENV, DEFAULT_REDIS_SERVER).rstrip('/')}/{db}"


async def wait_until(condition: Callable[[], object], limit: float = 10.0) -> None:
    """Wait for a condition that background tasks (consumers, relays) make true: bounded, so a
    condition never met fails the test, and not a speed test."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - polling state owned by other tasks
            await asyncio.sleep(0.01)


def without_hot_routes(app: FastAPI) -> ASGIApp:
    """The app as it would be without its `common.hot.HotRoute`s: every request to FastAPI's
    routing, for a test pinning that a hot route answers as its FastAPI route."""
    kept = app.user_middleware
    app.user_middleware = [m for m in kept if m.cls is not HotRoute]  # type: ignore[comparison-overlap]
    try:
        stack = app.build_middleware_stack()
    finally:
        app.user_middleware = kept

    async def fastapi_only(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app
        await stack(scope, receive, send)

    return fastapi_only


# The ports `free_port` hands out lie below the kernel's ephemeral range, from which every
# outgoing connection takes its local port: a port handed out there (bind to port 0) and bound a
# moment later by a test's server may meanwhile have become some connection's own, and the bind
# fails (EADDRINUSE). Below the range only an explicit bind takes a port.
FREE_PORTS_FROM = 20_000
_handed_out: set[int] = set()


def ephemeral_ports(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range:
    """The kernel's range of local ports for outgoing connections (Linux's default elsewhere)."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        low, high = 32_768, 60_999
    return range(low, high + 1)


def free_port() -> int:
    """A loopback port nothing is bound to right now, outside the ephemeral range (no connection
    takes it before the caller binds it), and never the same twice in one process."""
    ephemeral = ephemeral_ports()
    candidates = range(FREE_PORTS_FROM, ephemeral.start)
    if len(candidates) < 1_000:  # a range reaching down this far: take the kernel's choice
        candidates = range(0, 1)
    for _ in range(200):
        port = candidates[secrets.randbelow(len(candidates))]
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found")


class ThrowawayRedis:
    """A redis-server of the test's (or the soak's) own on a spare port that keeps nothing on
    disk, to stop and restart (empty) in fault tests — never the machine's shared Redis. Its log
    is `redis.log` in `directory`; `starts` counts the processes started."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/{db}"

    def start(self, *, epoch: bool = False) -> None:
        """With `epoch`, the revocation epoch is set as auth sets it once every marker is in
        (for tests of a gateway without auth behind it)."""
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
                    *(["--requirepass", self.password] if self.password else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis(
                    port=self.port, password=self.password, socket_timeout=0.5
                ) as probe:
                    if probe.ping():
                        if epoch:
                            probe.set(EPOCH_KEY, b"1")
                        return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("throwaway redis did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def freeze(self) -> None:
        """The server stays connected but answers nothing (SIGSTOP), as a hung Redis would."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start again on the same port: every key is gone, as after a crash."""
        self.stop()
        self.start()


class TcpRelay:
    """A TCP relay of the test's own on a spare loopback port, forwarding every connection to
    the server of a database URL (the suites' PostgreSQL): `cut` closes the listener and every
    relayed connection, so the database looks gone to whoever reaches it through the relay
    (`url`), and `restore` listens again on the same port; `stall` listens again but holds every
    new connection unanswered, as a hung database (or one behind a black hole) would; `freeze`
    holds what every relayed connection, established or new, carries either way, as a server
    that stopped (SIGSTOP) would, until `thaw` lets it through. The server itself is never
    touched."""

    def __init__(self, database_url: str) -> None:
        target = make_url(database_url)
        self.target = (target.host or "127.0.0.1", target.port or 5432)
        self.port = free_port()
        self.url = target.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False
        )
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.stalled = False
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def __aenter__(self) -> TcpRelay:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        await asyncio.sleep(0)  # the aborted connections' callbacks

    async def restore(self) -> None:
        if self.server is not None:  # stalled
            await self.cut()
        self.stalled = False
        await self.start()

    async def stall(self) -> None:
        await self.cut()
        self.stalled = True
        await self.start()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def stop(self) -> None:
        self.thaw()
        if self.server is not None:
            await self.cut()

    async def _relay(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        self.writers.add(client)
        if self.stalled:
            try:
                while await client_in.read(65536):
                    pass  # taken in, never answered
            except OSError:
                pass
            finally:
                client.transport.abort()
                self.writers.discard(client)
            return
        try:
            server_in, server = await asyncio.open_connection(*self.target)
        except OSError:
            client.transport.abort()
            self.writers.discard(client)
            return
        self.writers.add(server)
        try:
            await asyncio.gather(
                _pipe(client_in, server, self.flowing), _pipe(server_in, client, self.flowing)
            )
        finally:
            for writer in (client, server):
                writer.transport.abort()
                self.writers.discard(writer)


def assert_database_unavailable(response: httpx.Response, path: str) -> None:
    """`response` is the 503 of a database the service cannot reach (API.md §3)."""
    assert response.status_code == 503, (path, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The database is unavailable; retry later.",
        "instance": path,
    }


async def _pipe(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    """Copy until either end closes, then close the other's write side; a chunk read while
    `flowing` is clear is held until it is set."""
    try:
        while chunk := await source.read(65536):
            await flowing.wait()
            sink.write(chunk)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.transport.abort()


class MovableClock:
    """Real time plus an offset the test controls (for code that takes a `clock` returning an
    aware datetime)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@asynccontextmanager
async def fresh_database(service: str, migrations: Path) -> AsyncIterator[str]:
    """Create `gatehouse_test_<service>_<random>`, migrate it, yield its URL, drop it."""
    name = f"gatehouse_test_{service}_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
        engine = create_async_engine(url)
        try:
            await upgrade(engine, migrations)
        finally:
            await engine.dispose()
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@asynccontextmanager
async def rolled_back_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose every commit is a savepoint inside one outer transaction, rolled back."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        db = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield db
        finally:
            await db.close()
            if transaction.is_active:
                await transaction.rollback()


class TokenFactory:
    """Signs test access tokens with a throwaway RSA key and serves the matching JWKS."""

    def __init__(self, issuer: str, audience: str, kid: str = "test-key-1") -> None:
        self.issuer = issuer
        self.audience = audience
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def fetcher(self) -> JwksFetcher:
        async def fetch() -> dict[str, Any]:
            return self.jwks()

        return fetch

    def access_token(
        self, subject: str, *, headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        """A valid access token for `subject` (`claims` as `claims()` takes them), or one whose
        header `headers` change."""
        header = {"typ": "at+jwt", "kid": self.kid, **(headers or {})}
        return jwt.encode(
            self.claims(subject, **claims), self.private_key, algorithm="RS256", headers=header
        )

    def claims(
        self,
        subject: str = "user-1",
        *,
        session_id: str | None = "test-session",
        audience: str | None = None,
        lifetime: int = 900,
        **claims: Any,
    ) -> dict[str, Any]:
        """The payload of a valid access token (scope empty, the role `user`); `claims` replace
        or add any claim with any value, as a forgery needs (`sub=12345`, `roles="admin"`)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.audience,
            "client_id": "gatehouse",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": "",
            "roles": ["user"],
        }
        if session_id is not None:
            payload["sid"] = session_id
        payload.update(claims)
        return payload

    # -- forging: exactly the bytes an attacker would send ---------------------------------------

    def header(self, **overrides: Any) -> dict[str, Any]:
        """A valid access token's JOSE header, `overrides` replacing or adding any member."""
        return {"alg": "RS256", "typ": "at+jwt", "kid": self.kid, **overrides}

    def sign_exactly(self, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        """Exactly this header and payload, signed RS256 with the real key whatever `alg` says
        (PyJWT would refuse or rewrite what a forgery needs)."""
        signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
        signature = self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{b64url(signature)}"

    def public_pem(self) -> bytes:
        """The public key as PEM, the secret of an HS256 key-confusion forgery."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def sign_hs256(key: bytes, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """Exactly this header and payload, signed HS256 with `key`."""
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64url(signature)}"


@dataclass
class SinkHandler:
    messages: list[EmailMessage] = field(default_factory=list)
    # Answer the next `refusals` DATA commands with `refusal` instead of accepting.
    refusal: str = "451 4.3.0 try again later"
    refusals: int = 0
    # While set, an accepted message is recorded but the 250 answer is held back.
    hold: threading.Event | None = None
    # Answer the next `recipient_refusals` RCPT commands with `recipient_refusal`.
    recipient_refusal: str = "550 5.1.1 no such mailbox"
    recipient_refusals: int = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: list[str]
    ) -> str:
        if self.recipient_refusals > 0:
            self.recipient_refusals -= 1
            return self.recipient_refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        if self.refusals > 0:
            self.refusals -= 1
            return self.refusal
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        while self.hold is not None and self.hold.is_set():  # noqa: ASYNC110 - set from another thread
            await asyncio.sleep(0.02)
        return "250 OK"

    def event_ids(self) -> list[str]:
        return [str(message["X-Gatehouse-Event-Id"]) for message in self.messages]


class SmtpSink:
    """An SMTP server on a spare loopback port that records what it accepts and refuses on
    demand (`handler.refusals`, `recipient_refusals`, `hold`)."""

    def __init__(self, *, smtputf8: bool = False) -> None:
        self.port = free_port()
        self.smtputf8 = smtputf8
        self.handler = SinkHandler()
        self._controller: Controller | None = None
        self._sessions: list[Any] = []

    def start(self) -> None:
        from aiosmtpd.controller import Controller  # a dev dependency: imported only here
        from aiosmtpd.smtp import SMTP

        class RecordingController(Controller):
            """Keeps every SMTP session it makes (one per connection), for `stop` to close."""

            sessions: list[SMTP]

            def factory(self) -> SMTP:
                session: SMTP = super().factory()  # type: ignore[no-untyped-call]
                self.sessions.append(session)
                return session

        controller = RecordingController(
            self.handler, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=self.smtputf8
        )
        controller.sessions = []
        self._sessions = controller.sessions
        self._controller = controller
        controller.start()

    def stop(self) -> None:
        """Stop accepting, close every connection, then stop the server's loop.

        aiosmtpd's own stop closes the listening socket with connections just accepted and
        their transport not made yet: on Python 3.11 making it then fails (asyncio.Server
        asserts it is open) and the accepted socket is never closed, but collected later in
        whichever test runs then, as an unclosed socket (a ResourceWarning: an error here)."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        done = asyncio.run_coroutine_threadsafe(
            _close_connections(controller.server, self._sessions), controller.loop
        )
        done.result(timeout=10)
        controller.stop()

    def reset(self) -> None:
        self.handler.messages.clear()
        self.handler.refusals = 0
        self.handler.refusal = "451 4.3.0 try again later"
        self.handler.hold = None
        self.handler.recipient_refusals = 0
        self.handler.recipient_refusal = "550 5.1.1 no such mailbox"


async def _close_connections(server: asyncio.AbstractServer | None, sessions: list[Any]) -> None:
    """In the SMTP server's loop: no more accepting, every connection accepted so far made
    and closed, every task over (within 5 s), and only then the listening socket closed."""
    loop = asyncio.get_running_loop()
    listening = list(getattr(server, "sockets", ()))
    for listener in listening:
        loop.remove_reader(listener.fileno())  # accept no more, the server still open
    current = asyncio.current_task()
    deadline = time.monotonic() + 5
    while True:
        for session in sessions:
            if session.transport is not None:
                session.transport.close()
        if all(task is current for task in asyncio.all_tasks()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    if server is not None:
        server.close()
    await asyncio.sleep(0)  # the last connections' close callbacks


@dataclass
class HtmlForm:
    """A form of a hosted page as a browser without JavaScript would submit it: where it posts
    and the hidden fields it carries (the CSRF token among them)."""

    action: str
    method: str
    hidden: dict[str, str]
    buttons: list[tuple[str, str]]
    # A form with the `hidden` attribute is not shown: only a page's script may reveal it (the
    # sign-in page's passkey form), so a browser without JavaScript never submits it.
    shown: bool = True


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HtmlForm] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            method = values.get("method", "get").lower()
            self.forms.append(
                HtmlForm(values.get("action", ""), method, {}, [], shown="hidden" not in values)
            )
        elif self.forms and tag == "input" and values.get("type") == "hidden":
            self.forms[-1].hidden[values.get("name", "")] = values.get("value", "")
        elif self.forms and tag == "button" and "name" in values:
            self.forms[-1].buttons.append((values["name"], values.get("value", "")))


def html_forms(page: str) -> list[HtmlForm]:
    """The forms of an HTML page (entities in attributes decoded, as a browser reads them)."""
    parser = _FormParser()
    parser.feed(page)
    parser.close()
    return parser.forms


def assert_no_timing_difference(pairs: list[tuple[float, float]], *, floor: float = 0.002) -> None:
    """Fail when the first of each `(a, b)` pair of timings is systematically slower or faster.

    The pairs are measured back to back, so a load spike on a shared machine lands on both of a
    pair: a fixed tolerance on two medians fails whenever such noise outgrows it, and passes a real
    difference that hides under it. This is a sign test: with no difference, which of a pair is
    slower is a coin toss, so nearly every pair on one side (two-sided p < 0.001 for twenty pairs
    or more) is a real difference — and it must also be more than `floor` seconds at the median,
    so that a difference too small for anyone to measure over a network is not one either.
    """
    if len(pairs) < 20:
        raise ValueError("a sign test needs twenty pairs or more to tell anything")
    differences = sorted(a - b for a, b in pairs)
    slower = sum(1 for difference in differences if difference > 0)
    n = len(differences)
    # P(X >= k) for X ~ Binomial(n, 1/2), both tails.
    extreme = max(slower, n - slower)
    p_value = min(1.0, 2 * sum(comb(n, k) for k in range(extreme, n + 1)) / 2**n)
    median = differences[n // 2] if n % 2 else (differences[n // 2 - 1] + differences[n // 2]) / 2
    assert p_value >= 0.001 or abs(median) <= floor, (
        f"{slower} of {n} first timings were slower (p = {p_value:.5f}); "
        f"median difference {median * 1000:.2f} ms",
        pairs,
    )


@dataclass
class FormBrowser:
    """A browser without JavaScript over httpx: its own cookie jar, follows no redirect by
    itself, submits a page's one shown form with its hidden fields (and the button named)."""

    client: httpx.AsyncClient

    async def open(self, url: str) -> httpx.Response:
        return await self.client.get(url)

    async def submit(
        self, page: httpx.Response, fields: dict[str, str] | None = None, *, button: str = ""
    ) -> httpx.Response:
        forms = [form for form in html_forms(page.text) if form.shown]
        assert len(forms) == 1, page.text
        form = forms[0]
        assert form.method == "post"
        data = {**form.hidden, **(fields or {})}
        if button:
            name, value = next(b for b in form.buttons if b[1] == button)
            data[name] = value
        return await self.client.post(form.action, data=data)


# Debian's chromium (scripts/ensure-system-deps.sh), not a browser Playwright downloads.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def headless_chromium() -> AsyncIterator[Browser]:
    """A headless Chromium that asks nothing of the network but what a page loads, closed after."""
    from playwright.async_api import async_playwright  # a dev dependency: imported only here

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def read_me_in_swagger_ui(
    docs_url: str, username: str, password: str
) -> tuple[str, list[str]]:
    """Swagger UI at `docs_url` as a person uses it, in a headless Chromium: Authorize with the
    password flow, then "Try it out" on `GET /api/v1/users/me`, which must answer 200. The body
    the page shows, and every response the page received ("METHOD url status")."""
    seen: list[str] = []
    async with headless_chromium() as browser:
        page = await browser.new_page()
        page.on("response", lambda r: seen.append(f"{r.request.method} {r.url} {r.status}"))
        await page.goto(docs_url)
        await page.click("button.authorize")
        await page.fill("#oauth_username", username)
        await page.fill("#oauth_password", password)
        await page.click(".auth-btn-wrapper button.authorize")
        # Authorized: the modal offers "Logout" once the login answered with a token.
        modal = page.locator(".modal-ux")
        try:
            await modal.get_by_text("Authorized", exact=True).wait_for(timeout=15_000)
        except Exception as exc:  # say what the browser saw
            raise AssertionError(f"not authorized: {await modal.inner_text()!r} {seen}") from exc
        await page.click(".auth-btn-wrapper button.btn-done")
        operation = page.locator('[id^="operations-"][id$="read_me_api_v1_users_me_get"]')
        await operation.locator(".opblock-summary").click()
        await operation.locator("button.try-out__btn").click()
        await operation.locator("button.execute").click()
        status = operation.locator(".live-responses-table tr.response td.response-col_status")
        await status.first.wait_for(timeout=15_000)
        assert (await status.first.inner_text()).strip().startswith("200"), seen
        body = await operation.locator(".live-responses-table .microlight").first.inner_text()
    return body, seen
