"""Passkeys (WebAuthn, with the `webauthn` library): registration, the list, and signing in.

A signed-in user registers a passkey in two steps: options (a challenge, stored as its SHA-256,
bound to the user, one use, 5 minutes) and the browser's answer, verified by
`webauthn.verify_registration_response` against the challenge, the relying party id and the
origin. Only public material is stored (credential id, COSE public key, sign count), so there is
nothing to encrypt.

Signing in with a passkey is `authentication_options` then `verify_assertion`, for the hosted
sign-in page: as a second factor (the account known, its passkeys allowed) or without a password
(any discoverable passkey; the user handle names the account). A device-bound passkey proves
`hwk`, a synced one (backed up) `swk` (RFC 8176). The stored challenges of the two ceremonies are
kept apart (`challenge_hash`): a registration's challenge signs nobody in (the library's check of
the ceremony, `webauthn.create` against `webauthn.get`, is about what the browser signed, and an
authenticator signs a sign-in over any challenge). A passkey does not change the password login
of the API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from auth.audit import audit
from auth.clock import Clock
from auth.passkeys import repository
from auth.passkeys.exceptions import PasskeyAlreadyRegistered, PasskeyNotFound, PasskeyRefused
from auth.passkeys.models import Passkey, PasskeyChallenge
from auth.passkeys.schemas import PasskeyOptions, PasskeyRead
from auth.settings import AuthSettings
from auth.upstream.users import UsersClient

logger = logging.getLogger("gatehouse.auth.passkeys")

CHALLENGE_LIFETIME = timedelta(minutes=5)
# The challenge of a sign-in without a password belongs to no account yet.
ANY_ACCOUNT = ""
CHALLENGE_BYTES = 32
REGISTRATION_TIMEOUT_MS = 300_000


def relying_party(settings: AuthSettings) -> tuple[str, str]:
    """The relying party id and origin: the settings', else the issuer's host and origin (the
    hosted pages are served there)."""
    issuer = urlsplit(settings.issuer)
    rp_id = settings.webauthn_rp_id or issuer.hostname or "localhost"
    origin = settings.webauthn_origin or f"{issuer.scheme}://{issuer.netloc}"
    return rp_id, origin


def offered(settings: AuthSettings) -> bool:
    """Whether browsers can use passkeys here at all: a relying party id is a domain, never an
    IP address (WebAuthn §5.1.4.1), so an ISSUER like http://127.0.0.1:8000 without
    WEBAUTHN_RP_ID offers none, and its pages stay without script."""
    rp_id, _ = relying_party(settings)
    try:
        ipaddress.ip_address(rp_id.strip("[]"))
    except ValueError:
        return True
    return False


# A passkey's answer (`PublicKeyCredential.toJSON()`) is about a kilobyte; far less than this.
MAX_CREDENTIAL_LENGTH = 8 * 1024


def read_credential(text: str) -> dict[str, Any]:
    """The `credential` field of a sign-in page's passkey form: one JSON object."""
    if not text or len(text) > MAX_CREDENTIAL_LENGTH:
        raise PasskeyRefused("The passkey's answer is missing or too long.")
    try:
        credential = json.loads(text)
    except ValueError:
        raise PasskeyRefused("The passkey's answer is not JSON.") from None
    if not isinstance(credential, dict):
        raise PasskeyRefused("The passkey's answer is not a JSON object.")
    return credential


REGISTRATION = "register"
SIGN_IN = "sign-in"


def challenge_hash(purpose: str, challenge: bytes, binding: str = "") -> str:
    """What is stored of a challenge: its SHA-256 under its purpose, so that a registration's
    challenge is unknown to a sign-in and the other way round, and under what it is bound to
    (`binding`: the hosted sign-in page binds it to its browser and authorization request), so
    that it is unknown to any other."""
    bound = hashlib.sha256(binding.encode()).digest() + b":" if binding else b""
    return hashlib.sha256(purpose.encode() + b":" + bound + challenge).hexdigest()


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def challenge_of(credential: dict[str, Any]) -> bytes:
    """The challenge the browser signed over, read from its clientDataJSON (verified again,
    properly, by the library)."""
    try:
        response = credential["response"]
        client_data = json.loads(_b64url(response["clientDataJSON"]))
        return _b64url(client_data["challenge"])
    except (KeyError, TypeError, ValueError, binascii.Error, UnicodeDecodeError):
        raise PasskeyRefused("The credential's clientDataJSON is not readable.") from None


@dataclass(frozen=True, slots=True)
class PasskeySignIn:
    """Who a verified assertion signs in, and how (RFC 8176)."""

    user_id: str
    passkey_id: str
    amr: tuple[str, ...]
    # The authenticator verified its user (WebAuthn's UV flag: a PIN or a biometric).
    user_verified: bool = False


def sign_in_amr(signed: PasskeySignIn, *, after_password: bool) -> tuple[str, ...]:
    """The RFC 8176 methods of a sign-in with a passkey: `pwd` when a password came first; the
    passkey's `hwk` (device-bound) or `swk` (synced); `user` when the authenticator verified its
    user (WebAuthn's UV flag: a PIN or a biometric, and it does not say which, so neither `pin`
    nor `fpt` would be true); `mfa` when two factors were proved (the password and the passkey,
    or the passkey and the user its authenticator verified)."""
    methods = ["pwd"] if after_password else []
    methods += signed.amr
    if signed.user_verified:
        methods.append("user")
    if after_password or signed.user_verified:
        methods.append("mfa")
    return tuple(methods)


def _user_handle(credential: dict[str, Any]) -> str | None:
    handle = credential.get("response", {}).get("userHandle")
    if not isinstance(handle, str) or not handle:
        return None
    try:
        return _b64url(handle).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def to_read(passkey: Passkey) -> PasskeyRead:
    return PasskeyRead(
        id=passkey.id,
        name=passkey.name,
        created_at=passkey.created_at,
        last_used_at=passkey.last_used_at,
        backed_up=passkey.backed_up,
    )


@dataclass
class Passkeys:
    db: AsyncSession
    users: UsersClient
    settings: AuthSettings
    clock: Clock
    client_ip: str | None = None

    async def registration_options(self, user_id: str) -> PasskeyOptions:
        contact = (await self.users.authorization(user_id)).contact
        username = contact.username if contact is not None else user_id
        display = contact.full_name if contact is not None else username
        rp_id, _ = relying_party(self.settings)
        existing = await repository.passkeys_of(self.db, user_id)
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        options = generate_registration_options(
            rp_id=rp_id,
            rp_name=self.settings.mfa_issuer,
            user_name=username,
            # The user handle: the account id, no personal data (WebAuthn §14.6.1).
            user_id=user_id.encode(),
            user_display_name=display,
            challenge=challenge,
            timeout=REGISTRATION_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=passkey.credential_id) for passkey in existing
            ],
        )
        now = self.clock()
        await repository.add_challenge(
            self.db,
            PasskeyChallenge(
                challenge_hash=challenge_hash(REGISTRATION, challenge),
                user_id=user_id,
                expires_at=now + CHALLENGE_LIFETIME,
            ),
            now,
        )
        return PasskeyOptions(publicKey=json.loads(options_to_json(options)))

    async def register(self, user_id: str, credential: dict[str, Any], name: str) -> PasskeyRead:
        challenge = challenge_of(credential)
        now = self.clock()
        if not await repository.take_challenge(
            self.db, challenge_hash(REGISTRATION, challenge), user_id, now
        ):
            raise PasskeyRefused(
                "The registration challenge is unknown, used or expired: ask for new options."
            )
        rp_id, origin = relying_party(self.settings)
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=origin,
            )
        except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
            audit(
                "passkey.refused",
                user_id=user_id,
                client_ip=self.client_ip,
                reason=type(exc).__name__,
            )
            raise PasskeyRefused(f"The credential does not verify: {exc}"[:300]) from None
        if await repository.credential_taken(self.db, verified.credential_id):
            raise PasskeyAlreadyRegistered()
        transports = credential.get("response", {}).get("transports")
        passkey = Passkey(
            id=str(uuid.uuid4()),
            user_id=user_id,
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            name=name,
            aaguid=verified.aaguid,
            transports=(
                " ".join(t for t in transports if isinstance(t, str))[:128]
                if isinstance(transports, list)
                else None
            ),
            backed_up=verified.credential_backed_up,
            created_at=now,
        )
        await repository.add_passkey(self.db, passkey)
        audit(
            "passkey.registered", user_id=user_id, client_ip=self.client_ip, passkey_id=passkey.id
        )
        return to_read(passkey)

    async def authentication_options(
        self, user_id: str | None = None, *, binding: str = "", verify_user: bool = False
    ) -> PasskeyOptions:
        """Options for `navigator.credentials.get()`: for `user_id`'s passkeys (a second
        factor), or, with None, for any discoverable passkey (a sign-in without a password).
        The challenge is only good with the same `binding`; `verify_user` asks the
        authenticator for user verification (required, not preferred)."""
        rp_id, _ = relying_party(self.settings)
        allowed = await repository.passkeys_of(self.db, user_id) if user_id is not None else []
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        options = generate_authentication_options(
            rp_id=rp_id,
            challenge=challenge,
            timeout=REGISTRATION_TIMEOUT_MS,
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=passkey.credential_id) for passkey in allowed
            ],
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if verify_user
                else UserVerificationRequirement.PREFERRED
            ),
        )
        now = self.clock()
        await repository.add_challenge(
            self.db,
            PasskeyChallenge(
                challenge_hash=challenge_hash(SIGN_IN, challenge, binding),
                user_id=user_id if user_id is not None else ANY_ACCOUNT,
                expires_at=now + CHALLENGE_LIFETIME,
            ),
            now,
        )
        return PasskeyOptions(publicKey=json.loads(options_to_json(options)))

    async def verify_assertion(
        self,
        credential: dict[str, Any],
        user_id: str | None = None,
        *,
        binding: str = "",
        verify_user: bool = False,
    ) -> PasskeySignIn:
        """Check and spend a `navigator.credentials.get()` answer to `authentication_options`
        (the same `user_id` and `binding`): the challenge works once, the passkey must be
        registered (to `user_id`, or, without one, to the account its user handle names) and
        sign the challenge, its sign count moves on, and with `verify_user` the authenticator
        must have verified its user. Raises `PasskeyRefused`."""
        challenge = challenge_of(credential)
        now = self.clock()
        owner = user_id if user_id is not None else ANY_ACCOUNT
        if not await repository.take_challenge(
            self.db, challenge_hash(SIGN_IN, challenge, binding), owner, now
        ):
            raise PasskeyRefused("The sign-in challenge is unknown, used or expired.")
        try:
            raw_id = _b64url(str(credential["rawId"]))
        except (KeyError, ValueError, binascii.Error):
            raise PasskeyRefused("The credential has no readable rawId.") from None
        passkey = await repository.passkey_by_credential(self.db, raw_id)
        handle = _user_handle(credential)
        if (
            passkey is None
            or (user_id is not None and passkey.user_id != user_id)
            or (user_id is None and handle != passkey.user_id)
        ):
            audit("passkey.refused", user_id=user_id, client_ip=self.client_ip, reason="unknown")
            raise PasskeyRefused("This passkey is not registered for the account.")
        rp_id, origin = relying_party(self.settings)
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=origin,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=verify_user,
            )
        except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
            audit(
                "passkey.refused",
                user_id=passkey.user_id,
                client_ip=self.client_ip,
                reason=type(exc).__name__,
            )
            raise PasskeyRefused("The passkey's signature does not verify.") from None
        await repository.record_use(self.db, passkey.id, verified.new_sign_count, now)
        method = "swk" if verified.credential_backed_up else "hwk"
        audit("passkey.used", user_id=passkey.user_id, client_ip=self.client_ip, amr=method)
        return PasskeySignIn(passkey.user_id, passkey.id, (method,), verified.user_verified)

    async def has_passkeys(self, user_id: str) -> bool:
        return bool(await repository.passkeys_of(self.db, user_id))

    async def list_passkeys(self, user_id: str) -> list[PasskeyRead]:
        return [to_read(passkey) for passkey in await repository.passkeys_of(self.db, user_id)]

    async def remove(self, user_id: str, passkey_id: str) -> None:
        if not await repository.delete_passkey(self.db, user_id, passkey_id):
            raise PasskeyNotFound()
        audit("passkey.removed", user_id=user_id, client_ip=self.client_ip, passkey_id=passkey_id)
