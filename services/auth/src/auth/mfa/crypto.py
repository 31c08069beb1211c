"""The second factors' secrets: TOTP secrets sealed with AES-256-GCM, recovery codes kept as
HMAC-SHA256, both under `AUTH_MFA_ENCRYPTION_KEY` (from the environment, as the signing keys' KEK
is; production refuses to start without it, `AuthSettings.secrets`).

A TOTP secret must be read back to check a code, so it is encrypted, not hashed; the user id is
the associated data, so a sealed secret copied onto another user's row does not open. Recovery
codes are only ever compared, so they are hashed — with a key, because a code has 60 bits: a
plain SHA-256 of one could be searched offline by whoever copied the table, an HMAC cannot
without the key too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
# Recovery codes: 12 symbols of an alphabet without look-alikes (0/o, 1/l/i), 5 bits each.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_CODE_SYMBOLS = 12
RECOVERY_CODE_COUNT = 10


class SecretUnreadable(Exception):
    """A sealed secret does not open with this key (another key, or a tampered row)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._code_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"gatehouse recovery codes"
        ).derive(key)

    def seal(self, secret: str, user_id: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), _associated(user_id))

    def open(self, sealed: bytes, user_id: str) -> str:
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, _associated(user_id)).decode()
        except InvalidTag as exc:
            raise SecretUnreadable(f"the TOTP secret of {user_id} does not open") from exc

    def code_hash(self, user_id: str, code: str) -> str:
        """The stored form of a recovery code (already canonical, `canonical_recovery_code`)."""
        message = f"{user_id}:{code}".encode()
        return hmac.new(self._code_key, message, hashlib.sha256).hexdigest()


def _associated(user_id: str) -> bytes:
    return f"gatehouse totp:{user_id}".encode()


def new_recovery_code() -> str:
    """Shown as `xxxx-xxxx-xxxx`; stored and compared without the hyphens."""
    symbols = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_SYMBOLS))
    return "-".join(symbols[i : i + 4] for i in range(0, RECOVERY_CODE_SYMBOLS, 4))


def canonical_recovery_code(code: str) -> str | None:
    """The code as stored: lower case, hyphens and spaces dropped; None if it cannot be one."""
    canonical = code.replace("-", "").replace(" ", "").lower()
    if len(canonical) != RECOVERY_CODE_SYMBOLS or any(
        symbol not in RECOVERY_ALPHABET for symbol in canonical
    ):
        return None
    return canonical
