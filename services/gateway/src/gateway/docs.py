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

import aiohttp
from common.errors import NotFound, ServiceUnavailable
from common.security import LOGIN_PATH
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

logger = logging.getLogger("gatehouse.gateway.docs")

CACHE_SECONDS = 30.0
# Swagger UI 5 (OpenAPI 3.1), as distributed in the fastapi-swagger wheel; served from here.
ASSETS = Path(str(files("fastapi_swagger.resources")))
ASSET_NAMES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})
SCHEME = "OAuth2PasswordBearer"

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
                    "flows": {"password": {"tokenUrl": LOGIN_PATH, "scopes": {}}},
                }
            },
        },
    }
    for service, document in sorted(documents.items()):
        for path, item in document.get("paths", {}).items():
            if path.startswith("/internal") or not path.startswith(("/api/", "/.well-known/")):
                continue
            merged["paths"][path] = copy.deepcopy(item)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            existing = merged["components"]["schemas"].get(name)
            if existing is not None and existing != schema:
                logger.warning("schema %s differs between services; keeping %s's", name, service)
                continue
            merged["components"]["schemas"][name] = schema
    return merged


class MergedDocument:
    def __init__(self, session: aiohttp.ClientSession, upstreams: dict[str, str]) -> None:
        self.session = session
        self.upstreams = upstreams
        self.document: dict[str, Any] | None = None
        self.fetched_at = 0.0

    async def get(self) -> dict[str, Any]:
        if self.document is not None and time.monotonic() - self.fetched_at < CACHE_SECONDS:
            return self.document
        documents = {}
        for service, base in self.upstreams.items():
            try:
                async with self.session.get(base + "/openapi.json") as response:
                    if response.status == 200:
                        documents[service] = await response.json()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                logger.warning("no OpenAPI document from %s: %s", service, type(exc).__name__)
        if not documents:
            if self.document is not None:
                return self.document
            raise ServiceUnavailable("No service answered with its API document.")
        self.document = merge(documents)
        self.fetched_at = time.monotonic()
        return self.document


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    merged: MergedDocument = request.app.state.merged_document
    return JSONResponse(await merged.get())


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
