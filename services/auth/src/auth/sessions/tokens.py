"""Opaque refresh tokens: 256 random bits, stored only as a SHA-256 hash.

A fast hash is enough (no bcrypt/argon2): the token is random and high-entropy, so there is no
dictionary to try, and the hash only has to keep a database dump from being usable.
"""

from __future__ import annotations

import hashlib
import secrets


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
