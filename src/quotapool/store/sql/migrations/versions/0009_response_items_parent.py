"""Each kept response holds only its own turn (its new input and its output) and the response
it continued: a conversation costs storage linear in its length, not a full copy per turn.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("response_items") as batch:
        batch.add_column(sa.Column("parent", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("response_items") as batch:
        batch.drop_column("parent")
