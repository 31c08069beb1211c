"""What the auth lifespan builds, in one object (common.state), and the dependency reaching it.

`auth_state` is the dependency itself, and is called as a function where a route hands the
request on (a page's context, an error redirect)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from common.db import Database
from common.pages import PageKit
from common.state import state_dependency
from fastapi import Depends
from redis.asyncio import Redis

from auth.clock import Clock
from auth.keys.service import KeyRing, KeyRingJwks
from auth.mfa.crypto import SecretBox
from auth.oauth.token_status import TokenInspector
from auth.settings import AuthSettings
from auth.signing import AccessTokenSigner
from auth.upstream.users import UsersClient


@dataclass(frozen=True, slots=True)
class AuthState:
    settings: AuthSettings
    clock: Clock
    db: Database
    # Revocation markers (common.revocation); the sessions' and refresh families' fast path.
    redis: Redis
    key_ring: KeyRing
    # The ring's public keys as a JWKS, for id_token_hint on sign-out.
    id_token_keys: KeyRingJwks
    signer: AccessTokenSigner
    users: UsersClient
    mfa_box: SecretBox
    token_inspector: TokenInspector
    # The hosted sign-in, consent and sign-out pages' kit (API.md §13), built with the app.
    page_kit: PageKit


auth_state = state_dependency(AuthState)
AuthStateDep = Annotated[AuthState, Depends(auth_state)]
