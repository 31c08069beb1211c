"""The public key set (RFC 7517)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from auth.state import auth_state

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/jwks.json")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    """Every published signing key (pending, active, and retired keys whose tokens may still be
    live): `kty, kid, use, alg, n, e`. Verifiers may cache it for `max-age` seconds."""
    max_age = auth_state(request).settings.jwks_cache_seconds
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    document: dict[str, Any] = auth_state(request).key_ring.jwks
    return document
