"""A software WebAuthn authenticator for the passkey tests: what a browser with a platform
authenticator answers to `navigator.credentials.create()` ("none" attestation, ES256), built
from the specification (WebAuthn §6.1 authenticator data, §6.5 attestation object), so that the
real `webauthn` verification runs against it. Chromium's virtual authenticator does the same in
a browser; this one needs none."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
FLAG_BACKUP_ELIGIBLE = 0x08
FLAG_BACKED_UP = 0x10
FLAG_ATTESTED_DATA = 0x40


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def collected_client_data(ceremony: str, challenge: str, origin: str) -> bytes:
    """The client data a browser signs over (WebAuthn §5.8.1), for either ceremony."""
    return json.dumps(
        {"type": ceremony, "challenge": challenge, "origin": origin, "crossOrigin": False}
    ).encode()


class SoftAuthenticator:
    def __init__(self, *, backed_up: bool = False) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.sign_count = 0
        # A synced passkey (iCloud Keychain, Google Password Manager) is backed up.
        self.backup_flags = FLAG_BACKUP_ELIGIBLE | FLAG_BACKED_UP if backed_up else 0

    def credential(self, response: dict[str, Any]) -> dict[str, Any]:
        """The `PublicKeyCredential` as `toJSON()` gives it, around an authenticator response."""
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def create(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        ceremony: str = "webauthn.create",
    ) -> dict[str, Any]:
        """The `PublicKeyCredential` (as `toJSON()` gives it) for creation `options`."""
        public_key = options["publicKey"]
        client_data = collected_client_data(ceremony, public_key["challenge"], origin)
        rp_id_hash = hashlib.sha256((rp_id or public_key["rp"]["id"]).encode()).digest()
        flags = FLAG_USER_PRESENT | FLAG_USER_VERIFIED | FLAG_ATTESTED_DATA | self.backup_flags
        authenticator_data = (
            rp_id_hash
            + bytes([flags])
            + (0).to_bytes(4, "big")
            + bytes(16)  # AAGUID: none given
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self.cose_public_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": authenticator_data})
        return self.credential(
            {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            }
        )

    def get(
        self,
        options: dict[str, Any],
        origin: str,
        user_handle: str,
        *,
        rp_id: str = "gatehouse.test",
        sign_count: int | None = None,
        user_verified: bool = True,
    ) -> dict[str, Any]:
        """The assertion (`navigator.credentials.get()`, as `toJSON()` gives it) for request
        `options`, signed over authenticator data and the client data's hash (WebAuthn §6.3.3)."""
        self.sign_count = self.sign_count + 1 if sign_count is None else sign_count
        client_data = collected_client_data(
            "webauthn.get", options["publicKey"]["challenge"], origin
        )
        authenticator_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes(
                [
                    FLAG_USER_PRESENT
                    | (FLAG_USER_VERIFIED if user_verified else 0)
                    | self.backup_flags
                ]
            )
            + self.sign_count.to_bytes(4, "big")
        )
        signed = authenticator_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return self.credential(
            {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(authenticator_data),
                "signature": b64url(signature),
                "userHandle": b64url(user_handle.encode()),
            }
        )
