"""The client registry (API.md §13): operators register the apps that sign users in through
Gatehouse. Every route needs `clients:manage` (given to `admin`)."""

from __future__ import annotations

from typing import Annotated

from common.db import DbDep
from common.errors import NotFound, problem_responses
from common.security import Principal, require_permission
from fastapi import APIRouter, Depends, Response, status

from auth.clients import repository
from auth.clients.dependencies import ClientsDep
from auth.clients.schemas import ClientCreate, ClientCreated, ClientList, ClientRead
from auth.clients.service import client_read
from auth.sessions.dependencies import SessionServiceDep

MANAGE_PERMISSION = "clients:manage"
Manager = Annotated[Principal, Depends(require_permission(MANAGE_PERMISSION))]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
NOT_FOUND = "No client has this id."

router = APIRouter(
    prefix="/api/v1/auth/clients", tags=["clients"], responses=problem_responses(401, 403)
)


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(422))
async def create_client(
    registration: ClientCreate, _manager: Manager, clients: ClientsDep, response: Response
) -> ClientCreated:
    """Register an OpenID Connect client. A confidential client's `client_secret` is in this
    answer only: Gatehouse keeps its hash, and a lost secret means registering again."""
    created = await clients.register(registration)
    response.headers.update(NO_STORE)
    return created


@router.get("")
async def list_clients(_manager: Manager, clients: ClientsDep) -> ClientList:
    """Every registered client, oldest first (never a secret)."""
    return ClientList(items=list(await clients.registered_clients()))


@router.get("/{client_id}", responses=problem_responses(404))
async def read_client(client_id: str, _manager: Manager, db: DbDep) -> ClientRead:
    """One registered client (never its secret)."""
    client = await repository.registered_client(db, client_id)
    if client is None:
        raise NotFound(NOT_FOUND)
    return client_read(client)


@router.delete(
    "/{client_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404)
)
async def delete_client(
    client_id: str, _manager: Manager, db: DbDep, sessions: SessionServiceDep
) -> Response:
    """Delete a client: its codes and consents go, and every session it holds ends (its refresh
    tokens stop working, its access tokens are refused from the next request on)."""
    if len(client_id) > 64 or not await repository.delete_registered_client(db, client_id):
        raise NotFound(NOT_FOUND)
    session_ids = await repository.live_session_ids_of_client(db, client_id)
    await sessions.revoke_sessions(session_ids, "client_deleted")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
