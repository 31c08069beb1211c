"""Time, injectable: users reads "now" through a `Clock` so tests can move it (link expiry)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
