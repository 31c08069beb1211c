"""Key material: RSA generation (off the event loop) and AES-GCM wrapping of the private half."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KeyDecryptionFailed(Exception):
    """The stored private key does not open with this KEK (wrong key, or tampered row)."""


@dataclass(frozen=True, slots=True)
class WrappedKey:
    kid: str
    public_jwk: str
    nonce: bytes
    ciphertext: bytes


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}


def thumbprint_kid(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint: a kid derived from the key itself, so it never collides by chance."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    )


def wrap(private_key: rsa.RSAPrivateKey, kek: bytes) -> WrappedKey:
    jwk = public_jwk(private_key.public_key())
    kid = thumbprint_kid(jwk)
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = os.urandom(12)
    ciphertext = AESGCM(kek).encrypt(nonce, der, kid.encode())
    return WrappedKey(kid, json.dumps(jwk), nonce, ciphertext)


def unwrap(kid: str, nonce: bytes, ciphertext: bytes, kek: bytes) -> rsa.RSAPrivateKey:
    try:
        der = AESGCM(kek).decrypt(nonce, ciphertext, kid.encode())
    except InvalidTag as exc:
        raise KeyDecryptionFailed(f"signing key {kid} does not decrypt with this KEK") from exc
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyDecryptionFailed(f"signing key {kid} is not an RSA key")
    return key


async def generate_wrapped_key(bits: int, kek: bytes) -> tuple[WrappedKey, rsa.RSAPrivateKey]:
    """RSA generation takes about a second at 3072 bits: run it in a worker thread."""
    private_key = await asyncio.to_thread(rsa.generate_private_key, 65537, bits)
    return wrap(private_key, kek), private_key


def rewrap(kid: str, nonce: bytes, ciphertext: bytes, old_kek: bytes, new_kek: bytes) -> WrappedKey:
    """Re-encrypt a stored private key under a new KEK (same kid, new nonce)."""
    private_key = unwrap(kid, nonce, ciphertext, old_kek)
    wrapped = wrap(private_key, new_kek)
    assert wrapped.kid == kid
    return wrapped
