"""sessions.user_agent: what a person sees of a session in their session list (API.md §10),
beside the client IP, the login time and the last refresh the table already keeps

Revision ID: 2026_12_02_session_devices
Revises: 2026_12_02_oidc_provider
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_session_devices"
down_revision = "2026_12_02_oidc_provider"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("user_agent", sa.String(256), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "user_agent")
