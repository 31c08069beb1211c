"""Shared inputs of the deploy tests: the repository's deployment files, parsed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize_render import Resource, render

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")
SERVICES = ("gateway", "auth", "users", "notifier")
DATABASE_SERVICES = ("auth", "users", "notifier")
PORTS = {"gateway": 8000, "auth": 8001, "users": 8002, "notifier": 8003}


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open(encoding="utf-8") as stream:
        document: dict[str, Any] = yaml.safe_load(stream)
    return document


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Resource]]:
    """Every overlay, rendered: {"dev": [...], "prod": [...]}."""
    return {overlay: render(ROOT / "deploy/k8s/overlays" / overlay) for overlay in OVERLAYS}


def by_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}
