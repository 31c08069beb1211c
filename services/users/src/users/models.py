"""users' tables: accounts, roles and permissions as data, and the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime

from common.db import UTCDateTime, new_metadata
from common.events import OutboxMixin, utcnow
from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, Integer, String, Table, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    metadata = new_metadata()


role_permissions = Table(
    "role_permissions",
    Base.metadata,
    Column("role_name", ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True),
    Column("permission_name", ForeignKey("permissions.name", ondelete="CASCADE"), primary_key=True),
)

user_roles = Table(
    "user_roles",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "role_name", ForeignKey("roles.name", ondelete="RESTRICT"), primary_key=True, index=True
    ),
)


class Permission(Base):
    __tablename__ = "permissions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(200))


class Role(Base):
    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(200))
    permissions: Mapped[list[Permission]] = relationship(
        secondary=role_permissions, lazy="raise", order_by=Permission.name
    )


class User(Base):
    __tablename__ = "users"
    # The admin list and the CSV export walk users in (created_at, id) order.
    __table_args__ = (Index("ix_users_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    # NFKC + casefold forms: uniqueness and lookups ignore case and compatibility look-alikes.
    email_canonical: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(50))
    username_canonical: Mapped[str] = mapped_column(String(50), unique=True)
    full_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # When the password last changed (None: never since registration). auth refuses a refresh of
    # any session opened before it, whether or not the password-changed event has reached it.
    credentials_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The owner showed they read mail at this address (a verification or reset link used).
    # False for every account until then.
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # An address change waiting for its verification link (API.md §8): `email` changes only when
    # the link sent here is used. Not unique: whoever confirms first gets the address.
    pending_email: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="raise", order_by=Role.name)

    @property
    def role_names(self) -> list[str]:
        return [role.name for role in self.roles]

    @property
    def permission_names(self) -> list[str]:
        return sorted({p.name for role in self.roles for p in role.permissions})


class PasswordResetToken(Base):
    """An open reset link (API.md §8): only the SHA-256 of its token is kept. Rows are deleted
    when used, when a newer link is issued for the account, and when the password is reset."""

    __tablename__ = "password_reset_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EmailVerificationToken(Base):
    """An open verification link (API.md §8): the SHA-256 of its token and the address it was
    sent to (the account's `email`, or its `pending_email` for a change). Rows are deleted when
    used and when a newer link is issued for the account."""

    __tablename__ = "email_verification_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxEvent(OutboxMixin, Base):
    pass


class LoginLockout(Base):
    """An account's failed passwords and lockouts (API.md §10), kept where the password is
    checked so every replica of users counts the same failures: one row per account that has
    failed recently, read and changed under its row lock (`users.credentials.repository`)."""

    __tablename__ = "login_lockouts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # When the failed passwords of the last 15 minutes happened (epoch seconds, oldest first;
    # at most LOCKOUT_THRESHOLD of them): the window slides, nothing resets it at a boundary.
    recent_failures: Mapped[list[float]] = mapped_column(JSON, default=list)
    # Password logins are refused until then (None: not locked).
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Lockouts since the last successful login or password change: the next one lasts
    # 2 ** lockouts minutes, at most an hour.
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
