"""Service-client authentication and the built-in clients seeded from the settings.

Client secrets are hashed with plain SHA-256 and compared in constant time. A slow password hash
(bcrypt/argon2) defends low-entropy human passwords against guessing after a database leak; these
secrets are generated with 128+ random bits, so guessing is hopeless whatever the hash, and a fast
hash keeps the token endpoint cheap. The constant-time compare keeps timing from leaking it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.clients import repository
from auth.clients.models import ServiceClient
from auth.clock import Clock
from auth.settings import AuthSettings


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    client_id: str
    audiences: frozenset[str]
    scopes: frozenset[str]


# Built-in clients; every one authenticates with INTERNAL_CLIENT_SECRET.
BUILT_IN_CLIENTS = (
    # The gateway may introspect tokens at auth.
    ClientPolicy("gateway", frozenset({"auth"}), frozenset({"tokens:introspect"})),
    # The notifier may look up an account's current status at users.
    ClientPolicy("notifier", frozenset({"users"}), frozenset({"users:authorization"})),
    # users ends a user's sessions at auth when the password changes or the account is
    # deactivated (auth.internal.router), before it answers its own client.
    ClientPolicy("users", frozenset({"auth"}), frozenset({"sessions:end"})),
)
MAX_SECRET_LENGTH = 512


def hash_client_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


async def seed_built_in_clients(
    session: AsyncSession, settings: AuthSettings, clock: Clock
) -> None:
    """Create or update the built-in clients (idempotent; replicas may run it together)."""
    secret_hash = hash_client_secret(settings.internal_client_secret.get_secret_value())
    for policy in BUILT_IN_CLIENTS:
        await repository.upsert_client(
            session,
            ServiceClient(
                client_id=policy.client_id,
                secret_hash=secret_hash,
                allowed_audiences=" ".join(sorted(policy.audiences)),
                allowed_scopes=" ".join(sorted(policy.scopes)),
                updated_at=clock(),
            ),
        )


async def seed_clients_once(session: AsyncSession, settings: AuthSettings, clock: Clock) -> None:
    try:
        await seed_built_in_clients(session, settings, clock)
        await session.commit()
    except IntegrityError:
        # Another replica inserted the same rows at the same moment: theirs are identical.
        await session.rollback()


async def authenticate_client(
    session: AsyncSession, client_id: str, secret: str
) -> ClientPolicy | None:
    """The client's policy when the secret is right, else None (unknown or wrong alike)."""
    if len(client_id) > 64 or len(secret) > MAX_SECRET_LENGTH:
        return None
    client = await repository.get_client(session, client_id)
    presented = hash_client_secret(secret)
    expected = client.secret_hash if client is not None else hash_client_secret("")
    if not hmac.compare_digest(presented, expected) or client is None:
        return None
    return ClientPolicy(
        client.client_id,
        frozenset(client.allowed_audiences.split()),
        frozenset(client.allowed_scopes.split()),
    )
