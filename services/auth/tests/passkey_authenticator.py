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
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
FLAG_ATTESTED_DATA = 0x40


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SoftAuthenticator:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)

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
        client_data = json.dumps(
            {
                "type": ceremony,
                "challenge": public_key["challenge"],
                "origin": origin,
                "crossOrigin": False,
            }
        ).encode()
        rp_id_hash = hashlib.sha256((rp_id or public_key["rp"]["id"]).encode()).digest()
        flags = FLAG_USER_PRESENT | FLAG_USER_VERIFIED | FLAG_ATTESTED_DATA
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
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
