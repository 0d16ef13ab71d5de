"""batch checks (shift, batch calibration) and audit samples

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

What a model found of each batch's photography and the calibration refitted for it from its
reviewed coins; the coins drawn into each batch's audit, and who holds each while reviewing it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch", sa.String(length=255), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("shifted", sa.Boolean(), nullable=False),
        sa.Column("shift", sa.JSON(), nullable=True),
        sa.Column("calibration", sa.JSON(), nullable=True),
        sa.Column("calibrated_on", sa.Integer(), nullable=False),
        sa.Column("audit_scope", sa.JSON(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name=op.f("fk_batch_check_model_version_id_model_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_check")),
        sa.UniqueConstraint(
            "batch", "model_version_id", name=op.f("uq_batch_check_batch_model_version_id")
        ),
    )
    with op.batch_alter_table("batch_check", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_check_batch"), ["batch"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_batch_check_model_version_id"), ["model_version_id"], unique=False
        )
    op.create_table(
        "audit_sample",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch", sa.String(length=255), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("suggested_type_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False, server_default="bound"),
        sa.Column("drawn_by", sa.String(length=255), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name=op.f("fk_audit_sample_model_version_id_model_version"),
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"],
            ["specimen.id"],
            name=op.f("fk_audit_sample_specimen_id_specimen"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["suggested_type_id"],
            ["coin_type.id"],
            name=op.f("fk_audit_sample_suggested_type_id_coin_type"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_sample")),
        sa.UniqueConstraint("batch", "specimen_id", name=op.f("uq_audit_sample_batch_specimen_id")),
    )
    with op.batch_alter_table("audit_sample", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_sample_batch"), ["batch"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_sample_specimen_id"), ["specimen_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_sample", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_sample_specimen_id"))
        batch_op.drop_index(batch_op.f("ix_audit_sample_batch"))
    op.drop_table("audit_sample")
    with op.batch_alter_table("batch_check", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_check_model_version_id"))
        batch_op.drop_index(batch_op.f("ix_batch_check_batch"))
    op.drop_table("batch_check")
