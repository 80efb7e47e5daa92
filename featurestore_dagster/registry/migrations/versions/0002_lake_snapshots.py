"""Materializations record the lake snapshot of their publish (or rejection).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("materializations") as batch:
        batch.add_column(sa.Column("snapshot_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_materializations_snapshot", "materializations", ["snapshot_id"])


def downgrade() -> None:
    op.drop_index("ix_materializations_snapshot", table_name="materializations")
    with op.batch_alter_table("materializations") as batch:
        batch.drop_column("snapshot_id")
