"""The rendered Kubernetes overlays: valid for Kubernetes 1.31, and built to our rules."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.kustomize_render import Resource
from tests.deploy.support import DATABASE_SERVICES, OVERLAYS, PORTS, ROOT, SERVICES, by_kind

KUBERNETES_VERSION = "1.31.0"
GRACEFUL_SHUTDOWN_SECONDS = 20  # common/serve.py
PUBLIC_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
DATA_PORTS = {"postgres": 5432, "redis": 6379, "rabbitmq": 5672}
SMTP_PORTS = {"dev": 1025, "prod": 587}

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)


def pod_specs(resources: list[Resource]) -> dict[str, dict[str, Any]]:
    """Deployment and Job name -> pod spec."""
    return {
        f"{r['kind']}/{r['metadata']['name']}": r["spec"]["template"]["spec"]
        for r in resources
        if r["kind"] in {"Deployment", "Job"}
    }


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector matches `labels` (matchLabels and In/NotIn expressions)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        present = labels.get(expression["key"]) in expression["values"]
        if present != (expression["operator"] == "In"):
            return False
    return True


def policies_for(resources: list[Resource], service: str) -> list[dict[str, Any]]:
    labels = by_kind(resources, "Deployment")[service]["spec"]["template"]["metadata"]["labels"]
    return [
        p["spec"]
        for p in by_kind(resources, "NetworkPolicy").values()
        if selects(p["spec"]["podSelector"], labels)
    ]


def test_every_manifest_is_valid_kubernetes(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for resource in rendered[overlay]:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_each_service_has_deployment_service_autoscaler_and_disruption_budget(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert set(by_kind(resources, kind)) == set(SERVICES), kind
    for name, hpa in by_kind(resources, "HorizontalPodAutoscaler").items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert "replicas" not in by_kind(resources, "Deployment")[name]["spec"]
    for name, pdb in by_kind(resources, "PodDisruptionBudget").items():
        assert pdb["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
        assert pdb["spec"]["maxUnavailable"] == 1
    for name, service in by_kind(resources, "Service").items():
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["ports"] == [
            {"name": "http", "port": PORTS[name], "targetPort": "http", "protocol": "TCP"}
        ]


def test_probes_check_health_ready_and_startup(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for name, deployment in by_kind(rendered[overlay], "Deployment").items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [
            {"name": "http", "containerPort": PORTS[name], "protocol": "TCP"}
        ]
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["args"] == ["serve"]


def test_every_container_has_requests_and_limits(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for name, pod in pod_specs(rendered[overlay]).items():
        for container in pod["containers"]:
            resources = container["resources"]
            for section in ("requests", "limits"):
                assert set(resources[section]) == {"cpu", "memory"}, (name, section)


def test_pods_run_non_root_read_only_without_capabilities(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for name, pod in pod_specs(rendered[overlay]).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        # Service links would set AUTH_PORT=tcp://... over our AUTH_PORT setting.
        assert pod["enableServiceLinks"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name


def test_shutdown_drains_before_the_grace_period_ends(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for name, deployment in by_kind(rendered[overlay], "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep", name
        assert pod["terminationGracePeriodSeconds"] > int(command[1]) + GRACEFUL_SHUTDOWN_SECONDS


def test_pods_spread_over_zones_and_nodes(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for name, deployment in by_kind(rendered[overlay], "Deployment").items():
        constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        for constraint in constraints:
            assert constraint["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": name}}


def test_prometheus_scrapes_each_service_port(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for name, deployment in by_kind(rendered[overlay], "Deployment").items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PORTS[name]),
            "prometheus.io/path": "/metrics",
        }


def test_each_database_service_has_a_migration_job(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    jobs = by_kind(rendered[overlay], "Job")
    assert set(jobs) == {f"{s}-migrate" for s in DATABASE_SERVICES}
    deployments = by_kind(rendered[overlay], "Deployment")
    for service in DATABASE_SERVICES:
        pod = jobs[f"{service}-migrate"]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"] == ["migrate"]
        assert pod["restartPolicy"] == "Never"
        [serving] = deployments[service]["spec"]["template"]["spec"]["containers"]
        assert container["image"] == serving["image"]
        assert container["envFrom"] == serving["envFrom"]


def test_settings_come_from_the_config_map_and_secrets_by_name(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    assert by_kind(resources, "Secret") == {}
    config = by_kind(resources, "ConfigMap")["gatehouse-config"]["data"]
    assert config["MIGRATE_ON_START"] == "false"
    assert config["HOST"] == "0.0.0.0"
    assert config["AUTH_URL"] == "http://auth:8001"
    assert config["USERS_URL"] == "http://users:8002"
    for name, pod in pod_specs(resources).items():
        service = name.split("/")[1].removesuffix("-migrate")
        assert pod["containers"][0]["envFrom"] == [
            {"configMapRef": {"name": "gatehouse-config"}},
            {"secretRef": {"name": f"gatehouse-{service}"}},
        ]
    with (ROOT / "deploy/k8s/base/secret.example.yaml").open(encoding="utf-8") as stream:
        examples = {s["metadata"]["name"]: s["stringData"] for s in yaml.safe_load_all(stream)}
    assert set(examples) == {f"gatehouse-{s}" for s in SERVICES}
    for service in DATABASE_SERVICES:
        assert f"{service.upper()}_DATABASE_URL" in examples[f"gatehouse-{service}"]
    assert "AUTH_KEY_ENCRYPTION_KEY" in examples["gatehouse-auth"]
    assert "AUTH_MFA_ENCRYPTION_KEY" in examples["gatehouse-auth"]
    assert all("INTERNAL_CLIENT_SECRET" in data for data in examples.values())


def test_everything_is_denied_by_default(rendered: dict[str, list[Resource]], overlay: str) -> None:
    deny = by_kind(rendered[overlay], "NetworkPolicy")["default-deny-all"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_only_the_gateway_accepts_traffic_from_outside(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for name, policy in by_kind(rendered[overlay], "NetworkPolicy").items():
        for rule in policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                assert "ipBlock" not in peer, name
                if "namespaceSelector" not in peer:
                    continue
                namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                if namespace == MONITORING_NAMESPACE:
                    assert rule["ports"] == [{"protocol": "TCP", "port": "http"}], name
                else:
                    assert namespace == PUBLIC_NAMESPACE, name
                    assert policy["spec"]["podSelector"] == {
                        "matchLabels": {"app.kubernetes.io/name": "gateway"}
                    }, name


def test_services_accept_only_the_gateway_and_each_other(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    expected_callers = {
        "gateway": set(),
        "auth": {"gateway", "users"},
        "users": {"gateway", "auth"},
        "notifier": set(),
    }
    for service in SERVICES:
        callers: set[str] = set()
        for policy in policies_for(rendered[overlay], service):
            for rule in policy.get("ingress", []):
                for peer in rule["from"]:
                    if "namespaceSelector" in peer:
                        continue
                    callers.update(
                        n
                        for n in SERVICES
                        if selects(peer["podSelector"], {"app.kubernetes.io/name": n})
                    )
                    assert rule["ports"] == [{"protocol": "TCP", "port": PORTS[service]}]
        assert callers == expected_callers[service], service


def test_notifier_reaches_only_postgres_rabbitmq_smtp_and_dns(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    ports: set[int] = set()
    for policy in policies_for(rendered[overlay], "notifier"):
        for rule in policy.get("egress", []):
            ports.update(p["port"] for p in rule["ports"])
    assert ports == {53, DATA_PORTS["postgres"], DATA_PORTS["rabbitmq"], SMTP_PORTS[overlay]}
    config = by_kind(rendered[overlay], "ConfigMap")["gatehouse-config"]["data"]
    assert config["SMTP_PORT"] == str(SMTP_PORTS[overlay])


def test_the_open_internet_is_reached_only_for_smtp(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for name, policy in by_kind(rendered[overlay], "NetworkPolicy").items():
        for rule in policy["spec"].get("egress", []):
            if any(peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for peer in rule["to"]):
                assert name == "notifier-egress-smtp"
                assert rule["ports"] == [{"protocol": "TCP", "port": SMTP_PORTS[overlay]}]


def test_ingress_routes_only_public_paths_to_the_gateway(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    [ingress] = by_kind(rendered[overlay], "Ingress").values()
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["path"] for p in paths} == {"/api", "/.well-known", "/health"}
    assert all(
        p["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}} for p in paths
    )
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts == {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}


def test_everything_lands_in_the_overlay_namespace(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    namespace = {"dev": "gatehouse-dev", "prod": "gatehouse"}[overlay]
    for resource in rendered[overlay]:
        assert resource["metadata"]["namespace"] == namespace
        assert resource["metadata"]["labels"]["gatehouse.io/environment"] == overlay
