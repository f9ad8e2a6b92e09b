"""Strategies chosen in the admin API or the dashboard, over the configuration's.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_overrides",
        sa.Column("profile", sa.String(64), primary_key=True),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("routing_overrides")
