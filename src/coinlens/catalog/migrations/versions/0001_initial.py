"""initial catalogue schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "coin_type",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=True),
        sa.Column("authority", sa.String(length=255), nullable=True),
        sa.Column("mint", sa.String(length=255), nullable=True),
        sa.Column("denomination", sa.String(length=255), nullable=True),
        sa.Column("date_from", sa.Integer(), nullable=True),
        sa.Column("date_to", sa.Integer(), nullable=True),
        sa.Column("material", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coin_type")),
        sa.UniqueConstraint("reference", name=op.f("uq_coin_type_reference")),
    )
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('running', 'done', 'failed', 'interrupted')",
            name=op.f("ck_job_state_allowed"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_kind_target", ["kind", "target"], unique=False)

    op.create_table(
        "model_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backbone", sa.String(length=255), nullable=False),
        sa.Column("training_snapshot", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("artefacts", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_version")),
    )
    op.create_table(
        "specimen",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("accession", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=True),
        sa.Column("weight_g", sa.Float(), nullable=True),
        sa.Column("diameter_mm", sa.Float(), nullable=True),
        sa.Column("die_axis", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("batch", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('catalogued', 'backlog', 'in_review')",
            name=op.f("ck_specimen_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["type_id"], ["coin_type.id"], name=op.f("fk_specimen_type_id_coin_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_specimen")),
        sa.UniqueConstraint("accession", name=op.f("uq_specimen_accession")),
    )
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_specimen_batch"), ["batch"], unique=False)
        batch_op.create_index(batch_op.f("ix_specimen_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_specimen_type_id"), ["type_id"], unique=False)

    op.create_table(
        "image",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("thumbnail_key", sa.String(length=512), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("crop", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "side IN ('obverse', 'reverse', 'both', 'unknown')", name=op.f("ck_image_side_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"],
            ["specimen.id"],
            name=op.f("fk_image_specimen_id_specimen"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image")),
        sa.UniqueConstraint(
            "specimen_id", "side", "sha256", name=op.f("uq_image_specimen_id_side_sha256")
        ),
    )
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_image_specimen_id"), ["specimen_id"], unique=False)

    op.create_table(
        "review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_type_id", sa.Integer(), nullable=True),
        sa.Column("to_type_id", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_type_id"], ["coin_type.id"], name=op.f("fk_review_from_type_id_coin_type")
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"],
            ["specimen.id"],
            name=op.f("fk_review_specimen_id_specimen"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_type_id"], ["coin_type.id"], name=op.f("fk_review_to_type_id_coin_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review")),
    )
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_specimen_id"), ["specimen_id"], unique=False)

    op.create_table(
        "suggestion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('auto_accept', 'review', 'possible_new_type')",
            name=op.f("ck_suggestion_decision_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name=op.f("fk_suggestion_model_version_id_model_version"),
        ),
        sa.ForeignKeyConstraint(
            ["specimen_id"],
            ["specimen.id"],
            name=op.f("fk_suggestion_specimen_id_specimen"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["type_id"], ["coin_type.id"], name=op.f("fk_suggestion_type_id_coin_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion")),
        sa.UniqueConstraint(
            "specimen_id",
            "model_version_id",
            "rank",
            name=op.f("uq_suggestion_specimen_id_model_version_id_rank"),
        ),
    )
    with op.batch_alter_table("suggestion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_suggestion_model_version_id"), ["model_version_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_suggestion_specimen_id"), ["specimen_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("suggestion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suggestion_specimen_id"))
        batch_op.drop_index(batch_op.f("ix_suggestion_model_version_id"))

    op.drop_table("suggestion")
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_specimen_id"))

    op.drop_table("review")
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_specimen_id"))
        batch_op.drop_index(batch_op.f("ix_image_sha256"))

    op.drop_table("image")
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_specimen_type_id"))
        batch_op.drop_index(batch_op.f("ix_specimen_status"))
        batch_op.drop_index(batch_op.f("ix_specimen_batch"))

    op.drop_table("specimen")
    op.drop_table("model_version")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_kind_target")

    op.drop_table("job")
    op.drop_table("coin_type")
