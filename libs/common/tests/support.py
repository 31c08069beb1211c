"""What common's suite shares: the broker tests' event and queue, which both brokers (embedded and
RabbitMQ) must treat alike."""

from __future__ import annotations

import uuid

from common.events import Envelope

QUEUE = "notifier.user-registered"

# Bodies on the queue that are not a valid envelope: dead-lettered, never handed to a handler.
INVALID_ENVELOPES: list[object] = [
    {
        "id": str(uuid.uuid4()),
        "type": "user.registered",
        "occurred_at": "2026-01-01T00:00:00Z",
        "version": 2,
        "data": {},
    },
    {"type": "user.registered"},
    "not json",
]


def registered(**data: object) -> Envelope:
    return Envelope(type="user.registered", data={"user_id": str(uuid.uuid4()), **data})
