"""`make run`: start the whole platform.

Embedded (default, nothing set): every service in this one process, each on its own port and still
talking HTTP to the others, sharing in-process substitutes for Redis and RabbitMQ, SQLite files and
mail under `var/` (docs/ARCHITECTURE.md §5). For trying the platform and for development only.

Real infrastructure (the API.md §7 URLs set): each service runs as its own process,
`python -m <service> serve`, which applies its migrations first.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from common.cli import migrate_database
from common.embedded import Embedded
from common.logs import configure_logging
from common.serve import server_for
from common.settings import var_dir

SERVICES = ("auth", "users", "notifier", "gateway")  # start order: keys and accounts first
DATABASES = {
    "auth": "AUTH_DATABASE_URL",
    "users": "USERS_DATABASE_URL",
    "notifier": "NOTIFIER_DATABASE_URL",
}
REAL_INFRASTRUCTURE = (*DATABASES.values(), "REDIS_URL", "AMQP_URL")
ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("gatehouse.run")


def migrations_of(service: str) -> Path:
    return ROOT / "services" / service / "migrations"


def port_of(settings: Any, service: str) -> int:
    return int(getattr(settings, f"{service}_port"))


async def run_embedded() -> None:
    configure_logging("gatehouse", os.environ.get("LOG_LEVEL", "INFO"))
    logger.warning(
        "EMBEDDED MODE: SQLite, in-process store and broker, mail written to var/mail/. "
        "For trying Gatehouse and for development only; set the API.md section 7 URLs for "
        "real infrastructure."
    )
    var_dir().mkdir(parents=True, exist_ok=True)
    embedded = Embedded()
    servers = []
    for service in SERVICES:
        main = importlib.import_module(f"{service}.main")
        settings_module = importlib.import_module(f"{service}.settings")
        settings_class = next(
            value
            for name, value in vars(settings_module).items()
            if name.endswith("Settings") and name != "ServiceSettings" and isinstance(value, type)
        )
        settings = settings_class()
        if service in DATABASES:
            url = getattr(settings, DATABASES[service].lower())
            await migrate_database(url, migrations_of(service))
        app = main.create_app(settings, embedded=embedded)
        server = server_for(app, settings.host, port_of(settings, service))
        servers.append(server)
        logger.info("starting %s on http://%s:%s", service, settings.host, server.config.port)
    await asyncio.gather(*(server.serve() for server in servers))


def run_processes() -> int:
    missing = [name for name in REAL_INFRASTRUCTURE if not os.environ.get(name)]
    if missing:
        print(
            "Real-infrastructure mode needs every one of these set (or none, for embedded mode): "
            + ", ".join(missing),
            file=sys.stderr,
        )
        return 2
    children = [subprocess.Popen([sys.executable, "-m", service, "serve"]) for service in SERVICES]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)


def main() -> int:
    if any(os.environ.get(name) for name in REAL_INFRASTRUCTURE):
        return run_processes()
    asyncio.run(run_embedded())
    return 0


if __name__ == "__main__":
    sys.exit(main())
