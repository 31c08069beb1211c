"""sessions.auth_time and sessions.amr: when and how the login behind a session proved a
credential (RFC 9470 `auth_time`, RFC 8176 `amr`), kept by every refresh of the session

Sessions opened before this revision were all password logins: their `auth_time` is the login
(`created_at`) and their `amr` is `pwd`.

Revision ID: 2026_12_02_session_auth
Revises: 2026_12_01_revocation_markers
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_session_auth"
down_revision = "2026_12_01_revocation_markers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("auth_time", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sessions", sa.Column("amr", sa.String(64), nullable=True))
    op.execute("UPDATE sessions SET auth_time = created_at, amr = 'pwd'")


def downgrade() -> None:
    op.drop_column("sessions", "amr")
    op.drop_column("sessions", "auth_time")
