from common.migrations import run_env
from users.models import Base, OutboxEvent, Role, User

# every table registered before migrating
assert all(model.metadata is Base.metadata for model in (User, Role, OutboxEvent))
run_env(Base.metadata)
