"""Time, injectable: the app reads "now" through a `Clock` so tests can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def epoch(moment: datetime) -> int:
    """Whole seconds since 1970 of an aware moment (the clock's, or a `UTCDateTime` column's)."""
    return int(moment.timestamp())
