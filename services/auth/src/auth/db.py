"""auth's request transaction: like `common.db.get_session`, plus one rule.

Some refusals are decisions that must outlive the request: a reused refresh token revokes its
whole session, an expired session or deactivated account is closed, and the client is then told
no. Exceptions carrying `keep_changes = True` are committed before the error answer; every other
exception rolls back as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from common.db import Database
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.db
    async with database.sessionmaker() as session:
        try:
            yield session
        except BaseException as exc:
            if getattr(exc, "keep_changes", False):
                await session.commit()
            else:
                await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
