"""What the services of one embedded run share in-process (see DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.inprocess_broker import InProcessBroker
from common.redis import EmbeddedRedis


@dataclass
class Embedded:
    redis: EmbeddedRedis = field(default_factory=EmbeddedRedis)
    broker: InProcessBroker = field(default_factory=InProcessBroker)
