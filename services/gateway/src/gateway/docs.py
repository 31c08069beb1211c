"""One API document for the whole platform: the services' public OpenAPI documents merged
(no `/internal` paths), and Swagger UI served from the gateway with local assets. Both are off
in production."""

from __future__ import annotations

import copy
import logging
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
from common.errors import (
    PROBLEM_JSON,
    PROBLEM_SCHEMA_REF,
    NotFound,
    ServiceUnavailable,
    problem_responses,
    problem_schemas,
)
from common.security import LOGIN_PATH
from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from gateway import routes
from gateway.routes import Counted
from gateway.state import GatewayStateDep

logger = logging.getLogger("gatehouse.gateway.docs")

CACHE_SECONDS = 30.0
# Swagger UI 5 (OpenAPI 3.1), as distributed in the fastapi-swagger wheel; served from here.
ASSETS = Path(str(files("fastapi_swagger.resources")))
ASSET_NAMES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})
SCHEME = "OAuth2PasswordBearer"
TOKEN_PATH = "/api/v1/auth/token"
# Answers of the gateway itself on any route it proxies (proxy.py), whatever the service says.
RATE_LIMITED: dict[str, Any] = {
    "description": "Rate limited (API.md §5): retry after `Retry-After` seconds",
    "headers": {
        name: {"required": True, "schema": schema}
        for name, schema in (
            ("Retry-After", {"type": "integer", "minimum": 0}),
            ("RateLimit-Policy", {"type": "string"}),
            ("RateLimit", {"type": "string"}),
        )
    },
    "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
}

router = APIRouter(prefix="/api", include_in_schema=False)


def merge(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Gatehouse API",
            "version": "1",
            "description": "Every public route, through the gateway. Log in with **Authorize**.",
        },
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {
                SCHEME: {
                    "type": "oauth2",
                    "flows": {
                        "password": {
                            "tokenUrl": LOGIN_PATH,
                            "refreshUrl": TOKEN_PATH,
                            "scopes": {},
                        }
                    },
                },
                # Service clients (HTTP Basic at the token endpoint): tokens for the services.
                "ServiceClient": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": TOKEN_PATH, "scopes": {}}},
                },
            },
        },
    }
    schemas: dict[str, Any] = merged["components"]["schemas"]
    schemes: dict[str, Any] = merged["components"]["securitySchemes"]
    for service, document in sorted(documents.items()):
        components = document.get("components", {})
        renames = {
            name: f"{service}_{name}"
            for name, schema in components.get("schemas", {}).items()
            if name in schemas and schemas[name] != schema
        }
        if renames:
            logger.info("schemas renamed in %s's document: %s", service, sorted(renames))
            document = _renamed(document, renames)
            components = document.get("components", {})
        for path, item in document.get("paths", {}).items():
            if path.startswith("/internal") or not path.startswith(("/api/", "/.well-known/")):
                continue
            merged["paths"][path] = _with_gateway_answers(path, copy.deepcopy(item))
        for name, schema in components.get("schemas", {}).items():
            schemas.setdefault(name, schema)
        for name, scheme in components.get("securitySchemes", {}).items():
            schemes.setdefault(name, scheme)  # the gateway's own password flow wins
    for name, schema in problem_schemas().items():
        schemas.setdefault(name, schema)
    # Only the schemas the public paths use: internal request and response shapes stay internal.
    used = _referenced(merged["paths"], schemas)
    merged["components"]["schemas"] = {k: v for k, v in schemas.items() if k in used}
    return merged


# Routes whose body the gateway reads for a limit's key (gateway.logins): it refuses one it does
# not read as the service does, 415 or 422.
READ_BODIES = frozenset(
    {
        Counted.FORM,
        Counted.SIGN_IN,
        Counted.SIGN_IN_MFA,
        Counted.TOKEN,
        Counted.RECOVERY,
        Counted.MFA,
    }
)


def _with_gateway_answers(path: str, item: dict[str, Any]) -> dict[str, Any]:
    """The path item with what the gateway answers on its own, whatever the service: 401 for a
    presented token that is revoked (on every route), 429 over a rate limit, 503 when the service
    or Redis is down, 504 when the service is slow, 413 for a body over MAX_BODY_BYTES, and on
    the routes whose body it reads for the login and recovery limits 415 and 422."""
    for method, operation in item.items():
        if not isinstance(operation, dict):
            continue
        responses: dict[str, Any] = operation.setdefault("responses", {})
        statuses = [401, 503, 504]
        if "requestBody" in operation:
            statuses.append(413)
        route = routes.match(method.upper(), path)
        if route is not None and route.counted in READ_BODIES:
            statuses += [415, 422]
        own = problem_responses(*statuses)
        for status, answer in {**own, 429: RATE_LIMITED}.items():
            declared = responses.setdefault(str(status), answer)
            if declared is not answer:  # the service's answer, and the gateway's problem too
                for media_type, content in answer["content"].items():
                    declared.setdefault("content", {}).setdefault(media_type, content)
    return item


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    prefix = "#/components/schemas/"
    found: set[str] = set()
    pending: list[Any] = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix):
                name = ref[len(prefix) :]
                if name not in found and name in schemas:
                    found.add(name)
                    pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _renamed(document: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """The document with the named schemas renamed, and every `$ref` to them."""
    prefix = "#/components/schemas/"

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {key: walk(value) for key, value in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] in renames:
                out["$ref"] = prefix + renames[ref[len(prefix) :]]
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    renamed: dict[str, Any] = walk(document)
    schemas = renamed.get("components", {}).get("schemas", {})
    renamed.setdefault("components", {})["schemas"] = {
        renames.get(name, name): schema for name, schema in schemas.items()
    }
    return renamed


class MergedDocument:
    def __init__(self, client: httpx.AsyncClient, upstreams: dict[str, str]) -> None:
        self.client = client
        self.upstreams = upstreams
        self.document: dict[str, Any] | None = None
        self.fetched_at = 0.0

    async def get(self) -> dict[str, Any]:
        if self.document is not None and time.monotonic() - self.fetched_at < CACHE_SECONDS:
            return self.document
        documents = {}
        for service, base in self.upstreams.items():
            try:
                response = await self.client.get(base + "/openapi.json")
                if response.status_code == 200:
                    documents[service] = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                logger.warning("no OpenAPI document from %s: %s", service, type(exc).__name__)
        if not documents:
            if self.document is not None:
                return self.document
            raise ServiceUnavailable("No service answered with its API document.")
        self.document = merge(documents)
        self.fetched_at = time.monotonic()
        return self.document


@router.get("/openapi.json")
async def openapi(state: GatewayStateDep) -> JSONResponse:
    return JSONResponse(await state.merged_document.get())


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="Gatehouse API",
        swagger_js_url="/api/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/api/docs/assets/swagger-ui.css",
        swagger_favicon_url="/api/docs/assets/favicon-32x32.png",
        oauth2_redirect_url="/api/docs/oauth2-redirect",
        swagger_ui_parameters={"persistAuthorization": False},
    )


@router.get("/docs/oauth2-redirect")
async def swagger_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/docs/assets/{name}")
async def swagger_asset(name: str) -> FileResponse:
    if name not in ASSET_NAMES:
        raise NotFound("No such asset.")
    return FileResponse(ASSETS / name, headers={"cache-control": "public, max-age=86400"})
