from common.migrations import run_env

# conftest puts the tests folder on sys.path for alembic, which loads this file as a script.
from sample_models import Base  # type: ignore[import-not-found]

run_env(Base.metadata)
