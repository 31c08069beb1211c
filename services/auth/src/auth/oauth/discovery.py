"""RFC 8414 authorization server metadata, with every URL built from ISSUER."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from auth.clients.schemas import OIDC_SCOPES
from auth.state import auth_state

router = APIRouter(tags=["discovery"])

# Permissions a client may ask for (API.md §4): its tokens carry those the user holds.
PERMISSION_SCOPES = ("users:read", "users:manage", "clients:manage")
CLAIMS_SUPPORTED = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "at_hash",
    "azp",
    "sid",
    "email",
    "email_verified",
    "preferred_username",
    "name",
]


@router.get("/.well-known/openid-configuration")
async def openid_configuration(request: Request, response: Response) -> dict[str, Any]:
    """OpenID Connect discovery / RFC 8414 metadata: where the authorization, token, UserInfo,
    end-session, revocation, introspection and key-set endpoints are, and what they support."""
    settings = auth_state(request).settings
    issuer = settings.issuer.rstrip("/")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return {
        "issuer": settings.issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "authorization_endpoint": f"{issuer}/api/v1/auth/authorize",
        "token_endpoint": f"{issuer}/api/v1/auth/token",
        "userinfo_endpoint": f"{issuer}/api/v1/auth/userinfo",
        "end_session_endpoint": f"{issuer}/api/v1/auth/end-session",
        "revocation_endpoint": f"{issuer}/api/v1/auth/revoke",
        # Internal: reachable by services at auth directly, never through the gateway.
        "introspection_endpoint": f"{settings.auth_url.rstrip('/')}/internal/v1/introspect",
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
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
        "scopes_supported": [*OIDC_SCOPES, *PERMISSION_SCOPES],
        "claims_supported": CLAIMS_SUPPORTED,
    }
