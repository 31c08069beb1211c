"""Schemathesis hooks for test_api_document (loaded by `st run` through SCHEMATHESIS_HOOKS).

Every operation that declares a bearer token gets one of an admin registered for that call
alone: what a call does (deletes the account, changes its password, ends its sessions, takes its
roles) cannot refuse the calls after it, and every operation is reached with the rights it asks
for. Its address is the gateway's (FUZZ_GATEWAY_URL), the role is given in users' database
(FUZZ_USERS_DATABASE_URL), as test_session_list's admins are: the platform has no way to make one
over HTTP, by design.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from typing import Any

import httpx
import schemathesis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from .support import new_account

# No pool: a connection per grant, closed after it, so that the run holds none between calls
# (worker threads come and go between phases; PostgreSQL's connections are shared and few).
_USERS_DB = create_async_engine(os.environ["FUZZ_USERS_DATABASE_URL"], poolclass=NullPool)


async def _make_admin(user_id: str) -> None:
    async with _USERS_DB.begin() as connection:
        await connection.execute(
            text("INSERT INTO user_roles (user_id, role_name) VALUES (:id, 'admin')"),
            {"id": uuid.UUID(user_id)},
        )


class _Gateway(threading.local):
    """A keep-alive client to the gateway per worker thread (`st run --workers`)."""

    def __init__(self) -> None:
        self.client = httpx.Client(base_url=os.environ["FUZZ_GATEWAY_URL"], timeout=30.0)


_gateway = _Gateway()


def fresh_admin_token() -> str:
    client = _gateway.client
    account = new_account()
    created = client.post("/api/v1/users/", json=account)
    created.raise_for_status()
    asyncio.run(_make_admin(created.json()["id"]))
    # Roles are read at login, so the login comes after the grant.
    login = {"username": account["username"], "password": account["password"]}
    pair = client.post("/api/v1/auth/login", data=login)
    pair.raise_for_status()
    token: str = pair.json()["access_token"]
    return token


@schemathesis.auth(refresh_interval=None)
class FreshAdmin:
    """A bearer token of a new admin for each call of an operation that declares one."""

    def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> str | None:
        if not ctx.operation.definition.raw.get("security"):
            return None
        return fresh_admin_token()

    def set(self, case: schemathesis.Case[Any], data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"
