"""revocation markers rebuildable from the database: per-user not-before times, and an index on
sessions.revoked_at for the restore's query

Revision ID: 2026_12_01_revocation_markers
Revises: 2026_11_24_auth_schema
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_revocation_markers"
down_revision = "2026_11_24_auth_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_not_before",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_not_before")),
    )
    op.create_index(op.f("ix_user_not_before_not_before"), "user_not_before", ["not_before"])
    op.create_index(op.f("ix_sessions_revoked_at"), "sessions", ["revoked_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_revoked_at"), table_name="sessions")
    op.drop_index(op.f("ix_user_not_before_not_before"), table_name="user_not_before")
    op.drop_table("user_not_before")
