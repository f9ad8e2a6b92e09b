"""Client API keys, and the key each request came with.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("models", sa.Text),
        sa.Column("profile", sa.String(64)),
        sa.Column("limits", sa.Text),
        sa.Column("expires_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("client_key", sa.String(128)))
    # Partial: requests without a key (most pools) cost no index write.
    op.create_index(
        "ix_requests_client_key_at",
        "requests",
        ["client_key", "at"],
        sqlite_where=sa.text("client_key IS NOT NULL"),
        postgresql_where=sa.text("client_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_requests_client_key_at", "requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("client_key")
    op.drop_table("client_keys")
