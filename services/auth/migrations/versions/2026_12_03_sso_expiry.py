"""sso_sessions.expires_at indexed: sign-ins prune the sign-on sessions long past their end

Revision ID: 2026_12_03_sso_expiry
Revises: 2026_12_03_passkeys
"""

from alembic import op

revision = "2026_12_03_sso_expiry"
down_revision = "2026_12_03_passkeys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_sso_sessions_expires_at"), "sso_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sso_sessions_expires_at"), table_name="sso_sessions")
