"""Clients: service-client authentication and the built-in clients seeded from the settings, and
the registry of OpenID Connect clients (API.md §13) with their authentication at the token endpoint.

Client secrets are hashed with plain SHA-256 and compared in constant time. A slow password hash
(bcrypt/argon2) defends low-entropy human passwords against guessing after a database leak; these
secrets are generated with 128+ random bits, so guessing is hopeless whatever the hash, and a fast
hash keeps the token endpoint cheap. The constant-time compare keeps timing from leaking it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from common.db import Database
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.clients import repository
from auth.clients.models import RegisteredClient, ServiceClient
from auth.clients.schemas import ClientCreate, ClientCreated, ClientRead
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


_NO_SECRET_HASH = hash_client_secret("")


async def authenticate_service_client(
    database: Database, client_id: str, secret: str
) -> ClientPolicy | None:
    """The service client's policy when the secret is right, else None (unknown or wrong alike,
    in the same time). One read outside any transaction (`Database.read_rows`): a client's row
    as committed when read, which is all a transaction would give a single read."""
    if len(client_id) > 64 or len(secret) > MAX_SECRET_LENGTH:
        return None
    client = await repository.service_client(database, client_id)
    expected = client["secret_hash"] if client is not None else _NO_SECRET_HASH
    if not hmac.compare_digest(hash_client_secret(secret), expected) or client is None:
        return None
    return ClientPolicy(
        client_id,
        frozenset(client["allowed_audiences"].split()),
        frozenset(client["allowed_scopes"].split()),
    )


async def seed_built_in_clients(db: AsyncSession, settings: AuthSettings, clock: Clock) -> None:
    """Create or update the built-in clients (idempotent; replicas may run it together)."""
    secret_hash = hash_client_secret(settings.internal_client_secret.get_secret_value())
    for policy in BUILT_IN_CLIENTS:
        await repository.upsert_client(
            db,
            ServiceClient(
                client_id=policy.client_id,
                secret_hash=secret_hash,
                allowed_audiences=" ".join(sorted(policy.audiences)),
                allowed_scopes=" ".join(sorted(policy.scopes)),
                updated_at=clock(),
            ),
        )


async def seed_clients_once(db: AsyncSession, settings: AuthSettings, clock: Clock) -> None:
    try:
        await seed_built_in_clients(db, settings, clock)
        await db.commit()
    except IntegrityError:
        # Another replica inserted the same rows at the same moment: theirs are identical.
        await db.rollback()


# Registered clients' ids never collide with a built-in one (those have no dash and no digits
# first): "oc-" and 128 random bits.
REGISTERED_CLIENT_PREFIX = "oc-"


def client_read(client: RegisteredClient) -> ClientRead:
    return ClientRead(
        client_id=client.client_id,
        name=client.name,
        redirect_uris=list(client.redirect_uris),
        post_logout_redirect_uris=list(client.post_logout_redirect_uris),
        type="confidential" if client.is_confidential else "public",
        first_party=client.first_party,
        scopes=sorted(client.allowed_scopes),
        created_at=client.created_at,
    )


@dataclass
class Clients:
    """Client authentication and the client registry for one request (built by
    `auth.clients.dependencies`; the CLI builds one on its own transaction)."""

    db: AsyncSession
    clock: Clock

    async def authenticate_registered(self, client_id: str, secret: str) -> RegisteredClient | None:
        """The confidential client when the secret is right, else None (unknown, public or wrong
        alike, in the same time)."""
        if len(client_id) > 64 or len(secret) > MAX_SECRET_LENGTH:
            return None
        client = await repository.registered_client(self.db, client_id)
        expected = client.secret_hash if client is not None else None
        matches = hmac.compare_digest(
            hash_client_secret(secret), expected or hash_client_secret("")
        )
        if client is None or expected is None or not matches:
            return None
        return client

    async def register(self, registration: ClientCreate) -> ClientCreated:
        """Store a new client; a confidential one gets a secret, returned here once and kept
        hashed."""
        secret = secrets.token_urlsafe(32) if registration.type == "confidential" else None
        client = RegisteredClient(
            client_id=REGISTERED_CLIENT_PREFIX + secrets.token_urlsafe(16),
            name=registration.name,
            client_type=registration.type,
            secret_hash=hash_client_secret(secret) if secret is not None else None,
            redirect_uris=list(registration.redirect_uris),
            post_logout_redirect_uris=list(registration.post_logout_redirect_uris),
            first_party=registration.first_party,
            scopes=" ".join(sorted(set(registration.scopes))),
            created_at=self.clock(),
        )
        await repository.add_registered_client(self.db, client)
        return ClientCreated(**client_read(client).model_dump(), client_secret=secret)

    async def registered_clients(self) -> Sequence[ClientRead]:
        return [client_read(client) for client in await repository.list_registered_clients(self.db)]
