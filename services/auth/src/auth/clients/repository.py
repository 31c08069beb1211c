"""All SQL about service clients and registered OpenID Connect clients."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.clients.models import RegisteredClient, ServiceClient
from auth.oidc.models import AuthorizationCode, Consent
from auth.sessions.models import LoginSession


async def get_client(db: AsyncSession, client_id: str) -> ServiceClient | None:
    return await db.get(ServiceClient, client_id)


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
