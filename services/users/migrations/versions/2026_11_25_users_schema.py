"""users schema: accounts, roles and permissions (user, admin seeded), outbox

Revision ID: 2026_11_25_users_schema
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_11_25_users_schema"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
PERMISSIONS = {
    "users:read": "List users, read any user, export them as CSV.",
    "users:manage": "Change roles and deactivate any user.",
}
ROLES = {
    "user": ("Every registered account.", []),
    "admin": ("Administers users.", ["users:read", "users:manage"]),
}


def upgrade() -> None:
    permissions = op.create_table(
        "permissions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_permissions")),
    )
    roles = op.create_table(
        "roles",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_roles")),
    )
    role_permissions = op.create_table(
        "role_permissions",
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.Column("permission_name", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_name"],
            ["roles.name"],
            ondelete="CASCADE",
            name=op.f("fk_role_permissions_role_name_roles"),
        ),
        sa.ForeignKeyConstraint(
            ["permission_name"],
            ["permissions.name"],
            ondelete="CASCADE",
            name=op.f("fk_role_permissions_permission_name_permissions"),
        ),
        sa.PrimaryKeyConstraint("role_name", "permission_name", name=op.f("pk_role_permissions")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_canonical", sa.String(320), nullable=False),
        sa.Column("username", sa.String(50), nullable=False),
        sa.Column("username_canonical", sa.String(50), nullable=False),
        sa.Column("full_name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email_canonical", name=op.f("uq_users_email_canonical")),
        sa.UniqueConstraint("username_canonical", name=op.f("uq_users_username_canonical")),
    )
    # The admin list and the CSV export walk users in (created_at, id) order.
    op.create_index("ix_users_created_at_id", "users", ["created_at", "id"])
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name=op.f("fk_user_roles_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["role_name"],
            ["roles.name"],
            ondelete="RESTRICT",
            name=op.f("fk_user_roles_role_name_roles"),
        ),
        sa.PrimaryKeyConstraint("user_id", "role_name", name=op.f("pk_user_roles")),
    )
    op.create_index(op.f("ix_user_roles_role_name"), "user_roles", ["role_name"])
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            nullable=False,
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index(op.f("ix_outbox_sent_at"), "outbox", ["sent_at"])
    op.bulk_insert(permissions, [{"name": n, "description": d} for n, d in PERMISSIONS.items()])
    op.bulk_insert(roles, [{"name": n, "description": d} for n, (d, _) in ROLES.items()])
    op.bulk_insert(
        role_permissions,
        [{"role_name": r, "permission_name": p} for r, (_, ps) in ROLES.items() for p in ps],
    )


def downgrade() -> None:
    for table in ("outbox", "user_roles", "users", "role_permissions", "roles", "permissions"):
        op.drop_table(table)
