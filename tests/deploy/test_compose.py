"""docker-compose.yml: valid against the Compose Specification schema, and our own rules."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the dev group
import pytest

from tests.deploy.support import DATABASE_SERVICES, PORTS, ROOT, SERVICES

# The compose-spec project's JSON schema, vendored (see README.md beside this file).
SCHEMA = ROOT / "tests/deploy/compose-spec.schema.json"
INFRASTRUCTURE = ("postgres", "redis", "rabbitmq", "mailpit")
REQUIRED_ENV = {
    "gateway": {
        "REDIS_URL",
        "GATEWAY_RATE_LIMIT",
        "GATEWAY_LOGIN_RATE_LIMIT",
        "GATEWAY_LOGIN_IP_RATE_LIMIT",
        "MAX_BODY_BYTES",
        "GATEWAY_TRUSTED_PROXIES",
        "CORS_ORIGINS",
        "GATEWAY_PORT",
    },
    "auth": {
        "AUTH_DATABASE_URL",
        "AUTH_KEY_ENCRYPTION_KEY",
        "AUTH_MFA_ENCRYPTION_KEY",
        "REDIS_URL",
        "AMQP_URL",
        "AUTH_PORT",
    },
    "users": {"USERS_DATABASE_URL", "AMQP_URL", "USERS_PORT"},
    "notifier": {
        "NOTIFIER_DATABASE_URL",
        "AMQP_URL",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_FROM",
        "NOTIFIER_PORT",
    },
}
COMMON_ENV = {
    "ENVIRONMENT",
    "LOG_LEVEL",
    "HOST",
    "ISSUER",
    "AUDIENCE",
    "AUTH_URL",
    "USERS_URL",
    "INTERNAL_CLIENT_SECRET",
    "MIGRATE_ON_START",
}
SECRETS = (
    "INTERNAL_CLIENT_SECRET",
    "AUTH_KEY_ENCRYPTION_KEY",
    "AUTH_MFA_ENCRYPTION_KEY",
    "POSTGRES_PASSWORD",
    "AUTH_DB_PASSWORD",
    "USERS_DB_PASSWORD",
    "NOTIFIER_DB_PASSWORD",
    "RABBITMQ_PASSWORD",
)


def compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in compose_validator().iter_errors(compose)
    ]
    assert errors == []


def test_schema_rejects_what_compose_rejects(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["auth"]["depends_on"]["migrate-auth"]["condition"] = "service_finished"
    broken["services"]["gateway"]["restart_policy"] = "always"
    assert len(list(compose_validator().iter_errors(broken))) == 2


def test_only_gateway_and_mailpit_ui_are_published(compose: dict[str, Any]) -> None:
    published = {name: svc["ports"] for name, svc in compose["services"].items() if "ports" in svc}
    assert set(published) == {"gateway", "mailpit"}
    assert published["gateway"] == ["${GATEWAY_PUBLISH:-8000}:8000"]
    assert published["mailpit"] == ["127.0.0.1:8025:8025"]


def test_every_service_and_infrastructure_container_is_defined(compose: dict[str, Any]) -> None:
    names = set(compose["services"])
    expected = {*SERVICES, *INFRASTRUCTURE, *(f"migrate-{s}" for s in DATABASE_SERVICES)}
    assert names == expected
    assert compose["services"]["rabbitmq"]["image"].endswith("-management")


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_its_environment(compose: dict[str, Any], service: str) -> None:
    environment = compose["services"][service]["environment"]
    assert COMMON_ENV | REQUIRED_ENV[service] <= set(environment)
    assert environment["HOST"] == "0.0.0.0"
    assert environment[f"{service.upper()}_PORT"] == str(PORTS[service])
    assert environment["AUTH_URL"] == "http://auth:8001"
    assert environment["USERS_URL"] == "http://users:8002"
    assert environment["MIGRATE_ON_START"] == "false"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_builds_from_the_one_dockerfile(
    compose: dict[str, Any], service: str
) -> None:
    build = compose["services"][service]["build"]
    assert build["dockerfile"] == "deploy/docker/Dockerfile"
    assert build["context"] == "."
    assert build["args"] == {"SERVICE": service}


@pytest.mark.parametrize("service", DATABASE_SERVICES)
def test_migrations_run_once_before_their_service(compose: dict[str, Any], service: str) -> None:
    migrate = compose["services"][f"migrate-{service}"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["image"] == compose["services"][service]["image"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    dependency = compose["services"][service]["depends_on"][f"migrate-{service}"]
    assert dependency["condition"] == "service_completed_successfully"
    own_url = f"{service.upper()}_DATABASE_URL"
    assert own_url in migrate["environment"]
    others = {f"{s.upper()}_DATABASE_URL" for s in DATABASE_SERVICES} - {own_url}
    assert not others & set(compose["services"][service]["environment"])


def test_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"(:?[^}]*)\}", text)
        assert uses, secret
        assert all(use.startswith(":?") for use in uses), (secret, uses)
    assert "env_file" not in json.dumps(compose)


def test_postgres_creates_one_database_per_service(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["postgres"]["volumes"]
    assert (
        "./deploy/docker/postgres-init.sh:/docker-entrypoint-initdb.d/10-gatehouse.sh:ro" in volumes
    )
    script = (ROOT / "deploy/docker/postgres-init.sh").read_text(encoding="utf-8")
    for service in DATABASE_SERVICES:
        assert f"create {service} " in script
        assert f"gatehouse_{service}\n" in script
        url = compose["services"][service]["environment"][f"{service.upper()}_DATABASE_URL"]
        assert re.fullmatch(
            rf"postgresql\+asyncpg://{service}:\$\{{[^}}]+\}}@postgres:5432/gatehouse_{service}",
            url,
        )


def test_application_containers_are_locked_down(compose: dict[str, Any]) -> None:
    for name in (*SERVICES, *(f"migrate-{s}" for s in DATABASE_SERVICES)):
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    assert compose["networks"]["internal"]["internal"] is True
