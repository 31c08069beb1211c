"""What differs between the dev and prod overlays."""

from __future__ import annotations

import re

from tests.deploy.kustomize_render import Resource
from tests.deploy.support import SERVICES, by_kind


def test_prod_runs_more_replicas_than_dev(rendered: dict[str, list[Resource]]) -> None:
    dev = by_kind(rendered["dev"], "HorizontalPodAutoscaler")
    prod = by_kind(rendered["prod"], "HorizontalPodAutoscaler")
    for service in SERVICES:
        assert prod[service]["spec"]["minReplicas"] > dev[service]["spec"]["minReplicas"]
        assert prod[service]["spec"]["maxReplicas"] > dev[service]["spec"]["maxReplicas"]
    for service in ("gateway", "auth", "users"):
        assert prod[service]["spec"]["minReplicas"] >= 3


def test_prod_runs_in_production_mode(rendered: dict[str, list[Resource]]) -> None:
    prod = by_kind(rendered["prod"], "ConfigMap")["gatehouse-config"]["data"]
    dev = by_kind(rendered["dev"], "ConfigMap")["gatehouse-config"]["data"]
    assert prod["ENVIRONMENT"] == "production"
    assert dev["ENVIRONMENT"] == "development"
    assert "*" not in prod["CORS_ORIGINS"].split(",")
    assert prod["ISSUER"].startswith("https://")


def test_prod_images_are_released_versions(rendered: dict[str, list[Resource]]) -> None:
    for resource in rendered["prod"]:
        if resource["kind"] not in {"Deployment", "Job"}:
            continue
        for container in resource["spec"]["template"]["spec"]["containers"]:
            assert re.fullmatch(
                r"registry\.example\.com/gatehouse/[a-z]+:\d+\.\d+\.\d+", container["image"]
            )
