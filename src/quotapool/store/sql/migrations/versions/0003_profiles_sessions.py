"""Profiles, scenarios and warmups in the request log; conversations that survive a restart.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("profile", sa.String(64)))
        batch.add_column(sa.Column("scenario", sa.String(32)))
        batch.add_column(sa.Column("sent_model", sa.String(128)))
        batch.add_column(sa.Column("warmup", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "conversations",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("credential", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_conversations_expires_at", "conversations", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_expires_at", "conversations")
    op.drop_table("conversations")
    with op.batch_alter_table("requests") as batch:
        for column in ("warmup", "sent_model", "scenario", "profile"):
            batch.drop_column(column)
