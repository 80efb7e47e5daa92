"""The registry as the first release wrote it (features, versions, events, materializations,
usage).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False, index: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, index=index)


def upgrade() -> None:
    op.create_table(
        "features",
        sa.Column("feature_name", sa.String(63), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_version", sa.String(64), nullable=False),
        sa.Column("feature_type", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(320), nullable=True),
        sa.Column("definition_file", sa.String(), nullable=True),
        sa.Column("usage_count", sa.BigInteger(), nullable=False, server_default="0"),
        _time("last_used_at", nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _time("deprecated_at", nullable=True),
        _time("archived_at", nullable=True),
    )
    op.create_table(
        "feature_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "feature_name",
            sa.String(63),
            sa.ForeignKey("features.feature_name"),
            nullable=False,
            index=True,
        ),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("patch", sa.Integer(), nullable=False),
        sa.Column("change_category", sa.String(16), nullable=False),
        sa.Column("changelog", sa.String(), nullable=True),
        sa.Column("breaking_changes", sa.Boolean(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("data_fingerprint", sa.String(64), nullable=False),
        sa.Column("metadata_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=True),
        _time("created_at"),
        sa.Column("is_rolled_back", sa.Boolean(), nullable=False),
        _time("rolled_back_at", nullable=True),
        sa.Column("restored_from", sa.String(64), nullable=True),
        sa.UniqueConstraint("feature_name", "version", name="uq_feature_version"),
    )
    op.create_index(
        "ix_feature_versions_order",
        "feature_versions",
        ["feature_name", "major", "minor", "patch"],
    )
    op.create_table(
        "feature_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("feature_name", sa.String(63), nullable=False, index=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("created_by", sa.String(320), nullable=True),
        _time("created_at"),
    )
    op.create_table(
        "materializations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("feature_name", sa.String(63), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("code_version", sa.String(64), nullable=True),
        sa.Column("data_fingerprint", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.Column("mean_value", sa.Float(), nullable=True),
        sa.Column("null_fraction", sa.Float(), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        _time("created_at"),
    )
    op.create_index(
        "ix_materializations_feature_time", "materializations", ["feature_name", "created_at"]
    )
    op.create_table(
        "feature_usage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("feature_name", sa.String(63), nullable=False),
        sa.Column("feature_version", sa.String(64), nullable=False),
        sa.Column("used_by_model", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("feature_importance", sa.Float(), nullable=True),
        sa.Column("correlation_with_target", sa.Float(), nullable=True),
        _time("usage_timestamp"),
        sa.Column("execution_id", sa.String(255), nullable=True),
        sa.Column("execution_duration_ms", sa.Float(), nullable=True),
    )
    op.create_index(
        "ix_feature_usage_feature_time", "feature_usage", ["feature_name", "usage_timestamp"]
    )
    op.create_index(
        "ix_feature_usage_stats",
        "feature_usage",
        [
            "feature_name",
            "used_by_model",
            "model_version",
            "environment",
            "feature_version",
            "feature_importance",
            "correlation_with_target",
            "usage_timestamp",
        ],
    )


def downgrade() -> None:
    for table in (
        "feature_usage",
        "materializations",
        "feature_events",
        "feature_versions",
        "features",
    ):
        op.drop_table(table)
