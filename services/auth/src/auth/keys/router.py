"""The public key set (RFC 7517)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from auth.state import auth_state

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/jwks.json", response_model=dict[str, Any])
async def jwks(request: Request) -> Response:
    """Every published signing key (pending, active, and retired keys whose tokens may still be
    live): `kty, kid, use, alg, n, e`. Verifiers may cache it for `max-age` seconds.

    Served from memory as the key ring encoded it at its last reload: no per-request encoding."""
    state = auth_state(request)
    return Response(
        state.key_ring.jwks_json,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={state.settings.jwks_cache_seconds}"},
    )
