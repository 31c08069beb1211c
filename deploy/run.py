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
from common.logs import configure_logging, wants_colour
from common.serve import DrainingServer, server_for
from common.settings import ServiceSettings, var_dir

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


def url_of(settings: Any, service: str) -> str:
    return f"http://{settings.host}:{port_of(settings, service)}"


def banner_rows(settings_of: dict[str, Any]) -> list[tuple[str, str]]:
    """What to open once the platform is up: the gateway, its API pages, where mail goes."""
    gateway = url_of(settings_of["gateway"], "gateway")
    notifier = settings_of["notifier"]
    if notifier.smtp_host:
        mail = f"SMTP {notifier.smtp_host}:{notifier.smtp_port}"
    else:
        mail = f"{Path(notifier.mail_dir).resolve()}/ (one .eml file per email)"
    internal = "  ".join(f"{name} {url_of(settings_of[name], name)}" for name in SERVICES[:3])
    return [
        ("gateway", gateway),
        ("Swagger UI", gateway + "/api/docs"),
        ("OpenAPI", gateway + "/api/openapi.json"),
        ("mail", mail),
        ("data", f"{var_dir().resolve()}/ (SQLite)"),
        ("internal", internal),
    ]


async def announce_when_up(
    servers: list[DrainingServer], settings_of: dict[str, Any], *, console: bool
) -> None:
    """Once every server listens: the URLs as a banner (console logs) or one log line (JSON)."""
    while not all(server.started for server in servers):
        if any(server.should_exit for server in servers):
            return
        await asyncio.sleep(0.05)
    rows = banner_rows(settings_of)
    if not console:
        fields = {name.lower().replace(" ", "_"): value for name, value in rows}
        logger.info("gatehouse is up", extra=fields)
        return
    heading = "Gatehouse is up: embedded mode, for development only"
    if wants_colour(sys.stdout):
        heading = f"\x1b[1m{heading}\x1b[0m"
    width = max(len(name) for name, _ in rows)
    body = "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
    sys.stdout.write(f"\n{heading}\n\n{body}\n\nCtrl+C stops it.\n\n")
    sys.stdout.flush()


async def run_embedded() -> None:
    base = ServiceSettings()
    log_format = base.log_format or "console"
    configure_logging("gatehouse", base.log_level, log_format)
    if log_format == "console":
        # Four servers in one process: uvicorn's start and stop lines, four times over and without
        # the service's name, say less than the banner does.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logger.warning(
        "EMBEDDED MODE: SQLite, in-process store and broker, mail written to var/mail/. "
        "For trying Gatehouse and for development only; set the API.md section 7 URLs for "
        "real infrastructure."
    )
    var_dir().mkdir(parents=True, exist_ok=True)
    embedded = Embedded()
    servers = []
    settings_of: dict[str, Any] = {}
    for service in SERVICES:
        main = importlib.import_module(f"{service}.main")
        settings_module = importlib.import_module(f"{service}.settings")
        settings_class = next(
            value
            for name, value in vars(settings_module).items()
            if name.endswith("Settings") and name != "ServiceSettings" and isinstance(value, type)
        )
        settings = settings_class()
        settings_of[service] = settings
        if service in DATABASES:
            url = getattr(settings, DATABASES[service].lower())
            await migrate_database(url, migrations_of(service))
        app = main.create_app(settings, embedded=embedded)
        server = server_for(app, settings.host, port_of(settings, service))
        servers.append(server)
        logger.info("starting %s on http://%s:%s", service, settings.host, server.config.port)
    await asyncio.gather(
        *(server.serve() for server in servers),
        announce_when_up(servers, settings_of, console=log_format == "console"),
    )


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
    try:
        asyncio.run(run_embedded())
    except KeyboardInterrupt:  # Ctrl+C: the servers have shut down gracefully; no traceback
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
