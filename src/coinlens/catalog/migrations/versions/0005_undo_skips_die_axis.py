"""undo, per-reviewer skips, die axis 1-12

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Every review keeps what undo needs (the values it replaced and wrote, the specimen's version
after it, its bulk-accept group, the review an undo reversed); a skipped coin waits behind the
others for the reviewer who skipped it; a die axis of 0 hours is the same as 12 and is stored so.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.add_column(sa.Column("before", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("after", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("version_after", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("undoes_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_review_undoes_id_review"), "review", ["undoes_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_review_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_undoes_id"), ["undoes_id"], unique=False)
        batch_op.create_index("ix_review_reviewer_recent", ["reviewer", "id"], unique=False)
    op.create_table(
        "queue_skip",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["specimen_id"],
            ["specimen.id"],
            name=op.f("fk_queue_skip_specimen_id_specimen"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_skip")),
        sa.UniqueConstraint(
            "reviewer", "specimen_id", name=op.f("uq_queue_skip_reviewer_specimen_id")
        ),
    )
    with op.batch_alter_table("queue_skip", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_queue_skip_specimen_id"), ["specimen_id"], unique=False
        )
    op.execute("UPDATE specimen SET die_axis = 12 WHERE die_axis = 0")


def downgrade() -> None:
    with op.batch_alter_table("queue_skip", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queue_skip_specimen_id"))
    op.drop_table("queue_skip")
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.drop_index("ix_review_reviewer_recent")
        batch_op.drop_index(batch_op.f("ix_review_undoes_id"))
        batch_op.drop_index(batch_op.f("ix_review_group_id"))
        batch_op.drop_constraint(batch_op.f("fk_review_undoes_id_review"), type_="foreignkey")
        for column in ("undoes_id", "group_id", "version_after", "after", "before"):
            batch_op.drop_column(column)
