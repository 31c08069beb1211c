"""mfa_totp, mfa_recovery_codes, mfa_tickets (API.md §9) and auth's outbox (the MFA notices)

Revision ID: 2026_12_03_mfa
Revises: 2026_12_02_session_devices
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_03_mfa"
down_revision = "2026_12_02_session_devices"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mfa_totp",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=True),
        sa.Column("enabled_at", TZ, nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("pending_secret", sa.LargeBinary(), nullable=True),
        sa.Column("pending_since", TZ, nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_mfa_totp")),
    )
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", SERIAL, sa.Identity(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_recovery_codes")),
        sa.UniqueConstraint(
            "user_id", "code_hash", name=op.f("uq_mfa_recovery_codes_user_id_code_hash")
        ),
    )
    op.create_index(op.f("ix_mfa_recovery_codes_user_id"), "mfa_recovery_codes", ["user_id"])
    op.create_table(
        "mfa_tickets",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_mfa_tickets")),
    )
    op.create_index(op.f("ix_mfa_tickets_expires_at"), "mfa_tickets", ["expires_at"])
    op.create_table(
        "outbox",
        sa.Column("seq", SERIAL, sa.Identity(), nullable=False),
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


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("mfa_tickets")
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_totp")
