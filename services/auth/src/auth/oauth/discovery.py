"""RFC 8414 authorization server metadata, with every URL built from ISSUER."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/openid-configuration")
async def openid_configuration(request: Request, response: Response) -> dict[str, Any]:
    """Where the token, revocation, introspection and key-set endpoints are, and what they
    support."""
    settings = request.app.state.settings
    issuer = settings.issuer.rstrip("/")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return {
        "issuer": settings.issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/api/v1/auth/token",
        "revocation_endpoint": f"{issuer}/api/v1/auth/revoke",
        # Internal: reachable by services at auth directly, never through the gateway.
        "introspection_endpoint": f"{settings.auth_url.rstrip('/')}/internal/v1/introspect",
        "grant_types_supported": ["refresh_token", "client_credentials"],
        "response_types_supported": ["token"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "bearer"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["users:read", "users:manage"],
    }
