"""All SQL on the deliveries table (Core statements on the table: no ORM unit of work on the hot
path)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.events import utcnow
from sqlalchemy import Table, Uuid, any_, bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.deliveries.models import Delivery, DeliveryStatus

deliveries: Table = Delivery.__table__  # type: ignore[assignment]
ERROR_LENGTH = 500  # deliveries.last_error is VARCHAR(500)

# PostgreSQL: one statement text whatever the batch size (arrays, not a VALUES list), so it is
# compiled and prepared once.
_CLAIM_MANY_POSTGRES = text(
    """
    INSERT INTO deliveries (event_id, kind, recipient, status, attempts, created_at)
    SELECT claim.event_id, claim.kind, claim.recipient, 'sending', 1, :now
    FROM unnest(CAST(:event_ids AS uuid[]), CAST(:kinds AS text[]), CAST(:recipients AS text[]))
        AS claim (event_id, kind, recipient)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
).columns(event_id=Uuid)
_SET_STATUS_POSTGRES = (
    update(deliveries)
    .where(deliveries.c.event_id == any_(bindparam("event_ids", type_=postgresql.ARRAY(Uuid))))
    .values(status=bindparam("status"), last_error=bindparam("error"))
)
_SET_SENT_POSTGRES = _SET_STATUS_POSTGRES.values(sent_at=bindparam("sent_at"))


@dataclass(frozen=True, slots=True)
class Claim:
    event_id: uuid.UUID
    kind: str
    recipient: str


@dataclass(frozen=True, slots=True)
class Outcome:
    event_id: uuid.UUID
    status: DeliveryStatus
    error: str | None = None


def _postgres(db: AsyncSession) -> bool:
    return db.get_bind().dialect.name == "postgresql"


async def claim_many(db: AsyncSession, claims: Sequence[Claim]) -> set[uuid.UUID]:
    """Insert "sending" records in one statement; returns the event ids inserted. An event that
    already has a record is left alone (`ON CONFLICT DO NOTHING`; a concurrent duplicate
    waits for the first transaction and then loses)."""
    now = utcnow()
    if _postgres(db):
        parameters = {
            "now": now,
            "event_ids": [claim.event_id for claim in claims],
            "kinds": [claim.kind for claim in claims],
            "recipients": [claim.recipient for claim in claims],
        }
        return set((await db.scalars(_CLAIM_MANY_POSTGRES, parameters)).all())
    rows = [
        {
            "event_id": claim.event_id,
            "kind": claim.kind,
            "recipient": claim.recipient,
            "status": DeliveryStatus.SENDING.value,
            "attempts": 1,
            "created_at": now,
        }
        for claim in claims
    ]
    statement = (
        sqlite.insert(deliveries)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(deliveries.c.event_id)
    )
    return set((await db.scalars(statement)).all())


async def get_for_update(db: AsyncSession, event_id: uuid.UUID) -> Delivery | None:
    statement = select(Delivery).where(Delivery.event_id == event_id).with_for_update()
    return await db.scalar(statement)


async def record_outcomes(db: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Set each event's final status: one UPDATE per distinct (status, error)."""
    groups: dict[tuple[DeliveryStatus, str | None], list[uuid.UUID]] = {}
    for outcome in outcomes:
        error = outcome.error[:ERROR_LENGTH] if outcome.error is not None else None
        groups.setdefault((outcome.status, error), []).append(outcome.event_id)
    now = utcnow()
    for (status, error), event_ids in groups.items():
        sent = status is DeliveryStatus.SENT
        if _postgres(db):
            parameters: dict[str, Any] = {
                "status": status.value,
                "error": error,
                "event_ids": event_ids,
            }
            if sent:
                parameters["sent_at"] = now
            statement = _SET_SENT_POSTGRES if sent else _SET_STATUS_POSTGRES
            await db.execute(statement, parameters)
            continue
        values: dict[str, Any] = {"status": status.value, "last_error": error}
        if sent:
            values["sent_at"] = now
        await db.execute(
            update(deliveries).where(deliveries.c.event_id.in_(event_ids)).values(**values)
        )
