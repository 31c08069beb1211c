"""All SQL about service clients."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from auth.clients.models import ServiceClient


async def get_client(session: AsyncSession, client_id: str) -> ServiceClient | None:
    return await session.get(ServiceClient, client_id)


async def upsert_client(session: AsyncSession, client: ServiceClient) -> None:
    await session.merge(client)
    await session.flush()
