"""Training-set manifests (``training_sets``), pinned to lake snapshots.

Registries written before this revision may hold the table already (made from the models when
the first training set was stored): it is kept as it is, rows and all.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("training_sets"):
        op.create_table(
            "training_sets",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("created_by", sa.String(320), nullable=True),
            sa.Column("used_by_model", sa.String(255), nullable=True),
            sa.Column("model_version", sa.String(64), nullable=True),
            sa.Column("environment", sa.String(16), nullable=True),
            sa.Column("spine_row_count", sa.BigInteger(), nullable=False),
            sa.Column("spine_hash", sa.String(64), nullable=False),
            sa.Column("snapshot_ids", sa.JSON(), nullable=False),
            sa.Column("manifest", sa.JSON(), nullable=False),
        )
    indexes = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("training_sets")}
    if "ix_training_sets_created_at" not in indexes:
        op.create_index("ix_training_sets_created_at", "training_sets", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_training_sets_created_at", table_name="training_sets")
    op.drop_table("training_sets")
