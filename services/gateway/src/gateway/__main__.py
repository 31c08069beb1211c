"""`python -m gateway serve`."""

from __future__ import annotations

from common.cli import service_cli
from common.settings import ServiceSettings

from gateway.main import create_app
from gateway.settings import GatewaySettings


def _port(settings: ServiceSettings) -> int:
    assert isinstance(settings, GatewaySettings)
    return settings.gateway_port


cli = service_cli("gateway", GatewaySettings, create_app, _port)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
