"""All SQL on the deliveries table."""

from __future__ import annotations

import uuid

from common.events import utcnow
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.deliveries.models import Delivery, DeliveryStatus


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, event_id: uuid.UUID, kind: str, recipient: str) -> bool:
        """Insert the record as "sending"; False when a record for the event already exists
        (`ON CONFLICT DO NOTHING`: a concurrent duplicate waits for the first and then loses)."""
        insert = (
            postgresql.insert
            if self.session.get_bind().dialect.name == "postgresql"
            else (sqlite.insert)
        )
        statement = (
            insert(Delivery)
            .values(
                event_id=event_id,
                kind=kind,
                recipient=recipient,
                status=DeliveryStatus.SENDING,
                attempts=1,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=[Delivery.event_id])
            .returning(Delivery.id)
        )
        return (await self.session.scalar(statement)) is not None

    async def get_for_update(self, event_id: uuid.UUID) -> Delivery | None:
        statement = select(Delivery).where(Delivery.event_id == event_id).with_for_update()
        return await self.session.scalar(statement)

    async def set_status(
        self, event_id: uuid.UUID, status: DeliveryStatus, error: str | None = None
    ) -> None:
        values: dict[str, object] = {"status": status, "last_error": error}
        if status is DeliveryStatus.SENT:
            values["sent_at"] = utcnow()
        await self.session.execute(
            update(Delivery).where(Delivery.event_id == event_id).values(**values)
        )
