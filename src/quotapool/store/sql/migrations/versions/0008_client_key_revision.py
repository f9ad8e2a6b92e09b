"""A change counter per client key: a running server notices every change by the sum of them
(a count and the latest `updated_at` missed a revocation stamped earlier than another key's
last change).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("client_keys") as batch:
        batch.add_column(sa.Column("revision", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("client_keys") as batch:
        batch.drop_column("revision")
