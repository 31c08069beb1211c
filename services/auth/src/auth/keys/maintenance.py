"""The background task of every replica: re-read the keys, and rotate when due.

Replicas agree through the database: rotation steps run under the key lock, and each replica
signs with whatever key the database says is active at its last reload.
"""

from __future__ import annotations

import asyncio
import logging

from common.db import Database

from auth.clock import Clock
from auth.keys.service import KeyRing, scheduled_rotation
from auth.settings import AuthSettings

logger = logging.getLogger("gatehouse.auth.keys")


async def maintain_keys(
    database: Database, ring: KeyRing, settings: AuthSettings, clock: Clock
) -> None:
    while True:
        await asyncio.sleep(settings.key_refresh_seconds)
        try:
            if settings.key_rotation_enabled:
                outcome = await scheduled_rotation(database, settings, clock)
                if outcome.action != "none":
                    logger.info(
                        "key rotation: %s %s %s", outcome.action, outcome.kid, outcome.detail
                    )
            await ring.reload_from(database)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Keep signing with the loaded key; the next round tries again.
            logger.exception("key maintenance failed")
