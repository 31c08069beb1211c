"""Enums for the hot path."""

from __future__ import annotations

from enum import Enum


class IdentityEnum(Enum):
    """An Enum whose members hash by identity, in C. Members are singletons, so that is what
    Enum's own equality means already; Enum's `__hash__` is Python code, run on every set or
    dict lookup of a member (`phase in _ASKED`, once a request on the gateway's hot path)."""

    __hash__ = object.__hash__
