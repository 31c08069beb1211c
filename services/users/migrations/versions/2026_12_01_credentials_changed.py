"""users.credentials_changed_at: when the account's password last changed

auth reads it at every refresh (the authorization answer) and refuses sessions opened before it,
so a password change ends sessions even while the event that also ends them is delayed or the
broker is down. NULL: never changed since registration.

Revision ID: 2026_12_01_credentials_changed
Revises: 2026_11_25_users_schema
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_credentials_changed"
down_revision = "2026_11_25_users_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("credentials_changed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("credentials_changed_at")
