"""Every suite's shared setting: smaller database pools than production's (common.settings), so
that the suites of several checkouts can share one PostgreSQL server. Services the integration
tests start as processes inherit it through the environment; `make bench` runs outside pytest,
with production's."""

from __future__ import annotations

import os

os.environ.setdefault("DATABASE_POOL_SIZE", "5")
os.environ.setdefault("DATABASE_MAX_OVERFLOW", "15")
