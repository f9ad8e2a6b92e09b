"""What each response relayed from a Codex account said, with the input it answered, so a
`previous_response_id` can be expanded (the ChatGPT backend refuses it over HTTP).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "response_items",
        sa.Column("response_id", sa.String(128), primary_key=True),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_response_items_expires_at", "response_items", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_response_items_expires_at", "response_items")
    op.drop_table("response_items")
