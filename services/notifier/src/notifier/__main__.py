"""`python -m notifier serve | migrate`."""

from __future__ import annotations

from pathlib import Path

from common.cli import service_cli
from common.settings import database_is_embedded
from sqlalchemy.engine import make_url

from notifier.main import create_app
from notifier.settings import NotifierSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def _database_url(settings: NotifierSettings) -> str:
    url = settings.notifier_database_url
    if database_is_embedded(url):  # SQLite cannot create the folder of its file
        database = make_url(url).database
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    return url


cli = service_cli(
    "notifier",
    NotifierSettings,
    create_app,
    lambda settings: settings.notifier_port,
    database_url=_database_url,
    migrations=MIGRATIONS,
)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
