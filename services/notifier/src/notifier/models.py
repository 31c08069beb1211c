"""The declarative base of the notifier's tables (its own metadata, its own Alembic history)."""

from __future__ import annotations

from common.db import new_metadata
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    metadata = new_metadata()
