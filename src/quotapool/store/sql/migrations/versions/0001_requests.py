"""The request log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("path", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128)),
        sa.Column("credential", sa.String(128)),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("cached_tokens", sa.Integer),
        sa.Column("ttfb_ms", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("decision", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_requests_at", "requests", ["at"])


def downgrade() -> None:
    op.drop_index("ix_requests_at", "requests")
    op.drop_table("requests")
