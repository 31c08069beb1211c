"""Password hashing: bcrypt on a fixed set of worker threads, behind bounded, fair queues.

bcrypt reads at most 72 bytes, so the password (NFC-normalised UTF-8) is first reduced with
HMAC-SHA-256 under a fixed, public context key and base64-encoded (44 ASCII bytes, no NUL): every
character of a 128-character password counts, and two passwords sharing their first 72 bytes stay
different passwords. The context key only separates this use of SHA-256 from any other.

Hashing is the service's scarce resource (one bcrypt at cost 12 holds a core for ~250 ms), so it
is bounded (API.md §11):

- `concurrency` hashes run at once, each on its own worker thread;
- callers beyond that wait in a queue of their kind — `login` (credential checks, auth's logins)
  or `account` (registrations, password changes) — of at most `queue_size` each. A full queue
  answers 503 + `Retry-After` at once: better a fast "try again" than a wait that ends in the
  caller's timeout anyway, with the hash computed for nobody;
- a freed worker takes the next caller from the kinds in turn, so a flood of registrations cannot
  starve logins (nor the reverse): each kind gets at least its share while the other is busy;
- a caller that has waited `max_wait` seconds is dropped (503) before its hash starts: auth waits
  a bounded time for users, and a hash computed after it gave up is capacity stolen from callers
  who are still there.

The kinds do not depend on whether the login names an existing account: that would make a full
queue (503) versus an answer (401) tell an attacker which names exist.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import re
import unicodedata
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, TypeVar

import bcrypt
from common.errors import ServiceUnavailable
from prometheus_client import Counter

PREHASH_KEY = b"gatehouse/users/password/v1"
_COST = re.compile(r"^\$2[aby]\$(\d\d)\$")

HashKind = Literal["login", "account"]
KINDS: tuple[HashKind, ...] = ("login", "account")
T = TypeVar("T")

HASHES_REFUSED = Counter(
    "gatehouse_users_password_hashes_refused_total",
    "Password hashes refused before they started (reason: queue_full, waited_too_long).",
    ["kind", "reason"],
)


def _prehash(password: str) -> bytes:
    normalised = unicodedata.normalize("NFC", password).encode("utf-8")
    return base64.b64encode(hmac.new(PREHASH_KEY, normalised, hashlib.sha256).digest())


def hash_password_sync(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password_sync(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))
    except ValueError:
        return False


def cost_of(password_hash: str) -> int:
    match = _COST.match(password_hash)
    return int(match.group(1)) if match else 0


class HashingBusy(ServiceUnavailable):
    """503 + Retry-After: every hash worker is busy and this caller's queue is full, or the caller
    waited as long as it usefully could."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many password checks at once; try again shortly.",
            headers={"Retry-After": str(retry_after)},
        )


class PasswordHasher:
    """Hashes and checks passwords on `concurrency` worker threads behind one bounded queue per
    kind (see the module docstring)."""

    def __init__(
        self,
        rounds: int,
        concurrency: int,
        *,
        queue_size: int = 8,
        max_wait: float = 2.0,
    ) -> None:
        self.rounds = rounds
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.max_wait = max_wait
        self.retry_after = max(1, math.ceil(max_wait))
        self._free = concurrency
        self._waiting: dict[HashKind, deque[asyncio.Future[None]]] = {k: deque() for k in KINDS}
        self._turn = 0  # which kind a freed worker looks at first
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="bcrypt")
        # Checked against when the login names no account, so both cases cost one bcrypt.
        self._dummy_hash = hash_password_sync("dummy password for unknown accounts", rounds)

    def waiting(self, kind: HashKind) -> int:
        return len(self._waiting[kind])

    def refuse_if_full(self, kind: HashKind) -> None:
        """503 now if a hash of `kind` could not even queue: called before any other work (the
        database lookups before the hash), so a full queue costs the caller milliseconds."""
        if self._free == 0 and len(self._waiting[kind]) >= self.queue_size:
            HASHES_REFUSED.labels(kind, "queue_full").inc()
            raise HashingBusy(self.retry_after)

    async def hash(self, password: str, *, kind: HashKind) -> str:
        return await self._run(kind, hash_password_sync, password, self.rounds)

    async def verify(self, password: str, password_hash: str | None, *, kind: HashKind) -> bool:
        if password_hash is None:
            await self._run(kind, verify_password_sync, password, self._dummy_hash)
            return False
        return await self._run(kind, verify_password_sync, password, password_hash)

    def needs_rehash(self, password_hash: str) -> bool:
        return cost_of(password_hash) < self.rounds

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def compute(self, work: Callable[..., T], *args: object) -> T:
        """Runs on a worker thread (tests override it to hold workers)."""
        return work(*args)

    async def _run(self, kind: HashKind, work: Callable[..., T], *args: object) -> T:
        await self._acquire(kind)
        loop = asyncio.get_running_loop()
        try:
            running: Future[T] = self._threads.submit(self.compute, work, *args)
        except BaseException:
            self._release()
            raise
        # The worker is free again when the thread is done, not when this caller stops waiting:
        # a cancelled caller must not let more than `concurrency` hashes run at once.
        running.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(running)

    async def _acquire(self, kind: HashKind) -> None:
        queue = self._waiting[kind]
        if self._free > 0 and not any(self._waiting.values()):
            self._free -= 1
            return
        if len(queue) >= self.queue_size:
            HASHES_REFUSED.labels(kind, "queue_full").inc()
            raise HashingBusy(self.retry_after)
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()
        queue.append(granted)
        expiry = loop.call_later(self.max_wait, self._expire, kind, granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled() and granted.exception() is None:
                self._release()  # the worker was handed over just as this caller went away
            raise
        finally:
            expiry.cancel()
            if granted in queue:
                queue.remove(granted)

    def _expire(self, kind: HashKind, granted: asyncio.Future[None]) -> None:
        if granted.done():
            return
        HASHES_REFUSED.labels(kind, "waited_too_long").inc()
        granted.set_exception(HashingBusy(self.retry_after))
        self._waiting[kind].remove(granted)

    def _release(self) -> None:
        """Hand the freed worker to the next waiting caller, the kinds taking turns."""
        for offset in range(len(KINDS)):
            kind = KINDS[(self._turn + offset) % len(KINDS)]
            queue = self._waiting[kind]
            while queue:
                granted = queue.popleft()
                if not granted.done():
                    granted.set_result(None)
                    self._turn = (self._turn + offset + 1) % len(KINDS)
                    return
        self._free += 1
