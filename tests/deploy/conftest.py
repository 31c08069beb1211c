"""Shared inputs of the deploy tests: the repository's deployment files, parsed once."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.kustomize_render import Resource, render
from tests.deploy.support import OVERLAYS, ROOT


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open(encoding="utf-8") as stream:
        document: dict[str, Any] = yaml.safe_load(stream)
    return document


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Resource]]:
    """Every overlay, rendered: {"dev": [...], "prod": [...]}."""
    return {overlay: render(ROOT / "deploy/k8s/overlays" / overlay) for overlay in OVERLAYS}
