"""`python -m gateway serve`."""

from __future__ import annotations

from common.cli import service_cli

from gateway.main import create_app
from gateway.settings import GatewaySettings

cli = service_cli("gateway", GatewaySettings, create_app, lambda settings: settings.gateway_port)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
