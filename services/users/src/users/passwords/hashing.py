"""Password hashing: bcrypt off the event loop, with bounded concurrency.

bcrypt reads at most 72 bytes, so the password (NFC-normalised UTF-8) is first reduced with
HMAC-SHA-256 under a fixed, public context key and base64-encoded (44 ASCII bytes, no NUL): every
character of a 128-character password counts, and two passwords sharing their first 72 bytes stay
different passwords. The context key only separates this use of SHA-256 from any other.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import unicodedata

import bcrypt

PREHASH_KEY = b"gatehouse/users/password/v1"
_COST = re.compile(r"^\$2[aby]\$(\d\d)\$")


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


class PasswordHasher:
    """Hashes and checks passwords on worker threads, at most `concurrency` at a time, so a burst
    of logins queues instead of starving the event loop or the machine."""

    def __init__(self, rounds: int, concurrency: int) -> None:
        self.rounds = rounds
        self._slots = asyncio.Semaphore(concurrency)
        # Checked against when the login names no account, so both cases cost one bcrypt.
        self._dummy_hash = hash_password_sync("dummy password for unknown accounts", rounds)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(hash_password_sync, password, self.rounds)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        async with self._slots:
            if password_hash is None:
                await asyncio.to_thread(verify_password_sync, password, self._dummy_hash)
                return False
            return await asyncio.to_thread(verify_password_sync, password, password_hash)

    def needs_rehash(self, password_hash: str) -> bool:
        return cost_of(password_hash) < self.rounds
