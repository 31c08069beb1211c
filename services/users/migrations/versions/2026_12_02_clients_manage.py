"""the clients:manage permission (register OpenID Connect clients at auth, API.md §13), given to
admin

Revision ID: 2026_12_02_clients_manage
Revises: 2026_12_02_password_resets
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_clients_manage"
down_revision = "2026_12_02_password_resets"
branch_labels = None
depends_on = None

PERMISSION = "clients:manage"
DESCRIPTION = "Register, list and delete the OpenID Connect clients of the auth service."


def upgrade() -> None:
    permissions = sa.table("permissions", sa.column("name"), sa.column("description"))
    role_permissions = sa.table(
        "role_permissions", sa.column("role_name"), sa.column("permission_name")
    )
    op.bulk_insert(permissions, [{"name": PERMISSION, "description": DESCRIPTION}])
    op.bulk_insert(role_permissions, [{"role_name": "admin", "permission_name": PERMISSION}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM role_permissions WHERE permission_name = 'clients:manage'"))
    op.execute(sa.text("DELETE FROM permissions WHERE name = 'clients:manage'"))
