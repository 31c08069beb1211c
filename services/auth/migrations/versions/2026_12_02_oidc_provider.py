"""OpenID Connect provider (API.md §13): registered clients, authorization codes, single sign-on
sessions, remembered consents; sessions gain the scope granted to their client and the sign-on
session they came from (end-session ends them with it)

Revision ID: 2026_12_02_oidc_provider
Revises: 2026_12_02_session_auth
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_oidc_provider"
down_revision = "2026_12_02_session_auth"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oidc_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("client_type", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=False),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_oidc_clients")),
    )
    op.create_table(
        "sso_sessions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("auth_time", TZ, nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sso_sessions_token_hash")),
    )
    op.create_index(op.f("ix_sso_sessions_user_id"), "sso_sessions", ["user_id"])
    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("sso_session_id", sa.String(36), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("auth_time", TZ, nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.Column("session_id", sa.String(36), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oidc_clients.client_id"],
            name=op.f("fk_authorization_codes_client_id_oidc_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_authorization_codes")),
    )
    op.create_index(
        op.f("ix_authorization_codes_expires_at"), "authorization_codes", ["expires_at"]
    )
    op.create_table(
        "consents",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("granted_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oidc_clients.client_id"],
            name=op.f("fk_consents_client_id_oidc_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "client_id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("scope", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sso_session_id", sa.String(36), nullable=True))
        batch.create_index(op.f("ix_sessions_sso_session_id"), ["sso_session_id"])


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index(op.f("ix_sessions_sso_session_id"))
        batch.drop_column("sso_session_id")
        batch.drop_column("scope")
    op.drop_table("consents")
    op.drop_index(op.f("ix_authorization_codes_expires_at"), table_name="authorization_codes")
    op.drop_table("authorization_codes")
    op.drop_index(op.f("ix_sso_sessions_user_id"), table_name="sso_sessions")
    op.drop_table("sso_sessions")
    op.drop_table("oidc_clients")
