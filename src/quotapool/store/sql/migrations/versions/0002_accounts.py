"""Accounts with encrypted secrets, and the usage history of every credential.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("identity", sa.String(256), unique=True),
        sa.Column("email", sa.String(256)),
        sa.Column("plan", sa.String(32)),
        sa.Column("account_id", sa.String(128)),
        sa.Column("base_url", sa.String(512)),
        sa.Column("models", sa.Text),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("last_refresh", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "usage_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("credential", sa.String(128), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("window", sa.String(64), nullable=False),
        sa.Column("used_percent", sa.Float, nullable=False),
        sa.Column("resets_at", sa.Float),
        sa.Column("source", sa.String(32), nullable=False),
    )
    op.create_index("ix_usage_history_credential_at", "usage_history", ["credential", "at"])


def downgrade() -> None:
    op.drop_index("ix_usage_history_credential_at", "usage_history")
    op.drop_table("usage_history")
    op.drop_table("accounts")
