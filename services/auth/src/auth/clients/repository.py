"""All SQL about service clients and registered OpenID Connect clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from common.db import Database
from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.clients.models import RegisteredClient, ServiceClient
from auth.oidc.models import AuthorizationCode, Consent
from auth.sessions.models import LoginSession

# Built once (a statement caches its own key and `Database.read_rows` its compiled SQL): read at
# every service-client authentication, introspection's included.
SERVICE_CLIENT = select(
    ServiceClient.secret_hash, ServiceClient.allowed_audiences, ServiceClient.allowed_scopes
).where(ServiceClient.client_id == bindparam("client_id"))


async def service_client(database: Database, client_id: str) -> Mapping[str, Any] | None:
    """The service client's secret hash and allowances, read without the ORM or a session
    (`Database.read_rows`), or None for an unknown id."""
    rows = await database.read_rows(SERVICE_CLIENT, {"client_id": client_id})
    return rows[0] if rows else None


async def upsert_client(db: AsyncSession, client: ServiceClient) -> None:
    await db.merge(client)
    await db.flush()


async def add_registered_client(db: AsyncSession, client: RegisteredClient) -> None:
    db.add(client)
    await db.flush()


async def registered_client(db: AsyncSession, client_id: str) -> RegisteredClient | None:
    """The registered client `client_id`, or None (an id longer than any we issue is none)."""
    if len(client_id) > 64:
        return None
    return await db.get(RegisteredClient, client_id)


async def list_registered_clients(db: AsyncSession) -> Sequence[RegisteredClient]:
    result = await db.execute(
        select(RegisteredClient).order_by(RegisteredClient.created_at, RegisteredClient.client_id)
    )
    return result.scalars().all()


async def delete_registered_client(db: AsyncSession, client_id: str) -> bool:
    """Delete the client, its codes and consents (explicitly: SQLite, the embedded run, does not
    cascade by default); False when there was none."""
    await db.execute(delete(AuthorizationCode).where(AuthorizationCode.client_id == client_id))
    await db.execute(delete(Consent).where(Consent.client_id == client_id))
    result = await db.execute(
        delete(RegisteredClient)
        .where(RegisteredClient.client_id == client_id)
        .returning(RegisteredClient.client_id)
    )
    return result.first() is not None


async def live_session_ids_of_client(db: AsyncSession, client_id: str) -> list[str]:
    result = await db.execute(
        select(LoginSession.id).where(
            LoginSession.client_id == client_id, LoginSession.revoked_at.is_(None)
        )
    )
    return list(result.scalars().all())
