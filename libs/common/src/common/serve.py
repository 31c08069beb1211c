"""Run a service under uvicorn with graceful shutdown.

On SIGTERM/SIGINT the app is marked draining (its `/ready` answers 503 at once, so load balancers
stop sending), then uvicorn stops accepting, finishes in-flight requests within the grace period,
and runs the lifespan shutdown that closes pools and consumers.
"""

from __future__ import annotations

import os
from types import FrameType

import uvicorn
from fastapi import FastAPI

from common.state import runtime_of

GRACEFUL_SHUTDOWN_SECONDS = 20


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        runtime_of(self._app).draining = True
        super().handle_exit(sig, frame)


def server_for(app: FastAPI, host: str, port: int) -> DrainingServer:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        proxy_headers=False,
        lifespan="on",
    )
    return DrainingServer(config, app)


def port_from_env(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


def serve(app: FastAPI, host: str, port: int) -> None:
    server_for(app, host, port).run()
