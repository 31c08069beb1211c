"""The event data the notifier acts on, validated before anything is sent."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class UserRegistered(BaseModel):
    """`user.registered` data (API.md §6), plus the id of the envelope that carried it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    user_id: uuid.UUID
    email: EmailStr
    username: str = Field(min_length=1, max_length=50)
    full_name: str = Field(min_length=1, max_length=100)
