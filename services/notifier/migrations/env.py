from common.migrations import run_env
from notifier.deliveries.models import Delivery
from notifier.models import Base

assert Delivery.metadata is Base.metadata  # every table registered before migrating
run_env(Base.metadata)
