"""Merging the services' OpenAPI documents (a pure function): public paths only, the schemas they
use, conflicting schema names kept apart, the gateway's password flow."""

from __future__ import annotations

from typing import Any

from gateway.docs import SCHEME, merge


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def operation(schema: str) -> dict[str, Any]:
    return {
        "responses": {"200": {"content": {"application/json": {"schema": ref(schema)}}}},
        "security": [{SCHEME: []}],
    }


AUTH: dict[str, Any] = {
    "paths": {
        "/api/v1/auth/login": {"post": operation("TokenPair")},
        "/internal/v1/introspect": {"post": operation("Introspection")},
        "/health": {"get": operation("Status")},
    },
    "components": {
        "schemas": {
            "TokenPair": {"type": "object", "properties": {"access_token": {"type": "string"}}},
            "Introspection": {"type": "object"},
            "Status": {"type": "object"},
            "Problem": {"type": "object", "title": "auth problem"},
        },
        "securitySchemes": {
            SCHEME: {"type": "oauth2", "flows": {"password": {"tokenUrl": "/elsewhere"}}},
            "ClientBasic": {"type": "http", "scheme": "basic"},
        },
    },
}
USERS: dict[str, Any] = {
    "paths": {
        "/api/v1/users/me": {"get": operation("UserRead")},
        "/internal/v1/credentials/verify": {"post": operation("Credentials")},
    },
    "components": {
        "schemas": {
            "UserRead": {"type": "object", "properties": {"error": ref("Problem")}},
            "Problem": {"type": "object", "title": "users problem"},
            "Credentials": {"type": "object"},
        }
    },
}


def test_only_public_paths_and_the_schemas_they_use() -> None:
    merged = merge({"auth": AUTH, "users": USERS})
    assert sorted(merged["paths"]) == ["/api/v1/auth/login", "/api/v1/users/me"]
    schemas = merged["components"]["schemas"]
    assert "Introspection" not in schemas
    assert "Credentials" not in schemas
    assert "Status" not in schemas
    assert "TokenPair" in schemas


def test_conflicting_schema_names_are_kept_apart() -> None:
    merged = merge({"auth": AUTH, "users": USERS})
    me = merged["paths"]["/api/v1/users/me"]["get"]["responses"]["200"]
    assert me["content"]["application/json"]["schema"] == ref("UserRead")
    user_read = merged["components"]["schemas"]["UserRead"]
    assert user_read["properties"]["error"] == ref("users_Problem")
    assert merged["components"]["schemas"]["users_Problem"]["title"] == "users problem"


def test_the_password_flow_logs_in_through_the_gateway() -> None:
    merged = merge({"auth": AUTH, "users": USERS})
    schemes = merged["components"]["securitySchemes"]
    assert schemes[SCHEME]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
    assert schemes["ClientBasic"] == {"type": "http", "scheme": "basic"}
    assert merged["openapi"].startswith("3.1")


def test_every_operation_lists_what_the_gateway_answers_itself() -> None:
    # Found by schemathesis: a revoked token's 401 on public routes, 429s and the gateway's 503
    # and 504 were in no operation's responses.
    merged = merge({"auth": AUTH, "users": USERS})
    for item in merged["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            assert {"401", "429", "503", "504"} <= set(responses)
            assert "application/problem+json" in responses["401"]["content"]
            assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert "ProblemDetails" in merged["components"]["schemas"]


def test_the_token_endpoint_is_a_declared_token_url() -> None:
    schemes = merge({"auth": AUTH, "users": USERS})["components"]["securitySchemes"]
    assert schemes[SCHEME]["flows"]["password"]["refreshUrl"] == "/api/v1/auth/token"
    flows = schemes["ServiceClient"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "/api/v1/auth/token"


def test_the_routes_whose_form_the_gateway_reads_declare_its_refusals() -> None:
    login = merge({"auth": AUTH, "users": USERS})["paths"]["/api/v1/auth/login"]["post"]
    assert {"415", "422"} <= set(login["responses"])
    me = merge({"auth": AUTH, "users": USERS})["paths"]["/api/v1/users/me"]["get"]
    assert "415" not in me["responses"]


def test_the_recovery_route_declares_the_gateways_refusals() -> None:
    # Found by schemathesis: a reset link request that is not JSON was the gateway's 415.
    forgot: dict[str, Any] = {
        "paths": {"/api/v1/users/password/forgot": {"post": {"responses": {}}}}
    }
    merged = merge({"users": forgot})["paths"]["/api/v1/users/password/forgot"]["post"]
    assert {"415", "422"} <= set(merged["responses"])
