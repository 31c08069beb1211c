"""The declarative base of auth's tables (signing keys, sessions, refresh tokens, clients)."""

from __future__ import annotations

from common.db import new_metadata
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    metadata = new_metadata()
