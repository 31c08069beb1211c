from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from common.testing import AUDIENCE, ISSUER, TokenFactory, fresh_database
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

HERE = Path(__file__).parent
# env.py of the sample migrations imports `sample_models` by name.
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
async def sample_database_url() -> AsyncIterator[str]:
    async with fresh_database("common", HERE / "sample_migrations") as url:
        yield url


@pytest.fixture(scope="session")
async def sample_engine(sample_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(sample_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def token_factory() -> TokenFactory:
    return TokenFactory(ISSUER, AUDIENCE)
