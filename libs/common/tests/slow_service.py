"""A service process for the graceful-shutdown tests: `python slow_service.py PORT MARKER`.

`GET /slow` answers after 1.5 s; the lifespan writes "closed" to MARKER when it shuts down.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from common.app import create_service_app
from common.serve import serve
from common.settings import ServiceSettings
from fastapi import APIRouter, FastAPI

router = APIRouter()


@router.get("/slow")
async def slow() -> dict[str, str]:
    await asyncio.sleep(1.5)
    return {"status": "finished"}


def main(port: int, marker: Path) -> None:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(marker.write_text, "started")
        yield
        await asyncio.to_thread(marker.write_text, "closed")

    app = create_service_app("slow", ServiceSettings(), lifespan=lifespan, routers=[router])
    serve(app, "127.0.0.1", port)


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
