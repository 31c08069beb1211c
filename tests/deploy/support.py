"""What the deploy tests share: where the repository is, the overlays, services and ports the
deployment files must agree on."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.kustomize_render import Resource

ROOT = Path(__file__).resolve().parents[2]


OVERLAYS = ("dev", "prod")


SERVICES = ("gateway", "auth", "users", "notifier")


DATABASE_SERVICES = ("auth", "users", "notifier")


PORTS = {"gateway": 8000, "auth": 8001, "users": 8002, "notifier": 8003}


def by_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}
