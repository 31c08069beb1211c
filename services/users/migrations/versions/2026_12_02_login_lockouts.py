"""login_lockouts: each account's failed passwords of the last 15 minutes and its lockouts
(API.md §10), in users' database because users checks the password

Revision ID: 2026_12_02_login_lockouts
Revises: 2026_12_02_email_verification
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_login_lockouts"
down_revision = "2026_12_02_email_verification"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "login_lockouts",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("recent_failures", sa.JSON(), nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            ondelete="CASCADE",
            name=op.f("fk_login_lockouts_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_login_lockouts")),
    )


def downgrade() -> None:
    op.drop_table("login_lockouts")
