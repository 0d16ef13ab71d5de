"""record edits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Curators edit a type's record (authority, mint, dates...) where they review: a version on each
type guards those edits against lost updates, and ``type_edit`` keeps who changed what.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("coin_type", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "type_edit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["coin_type.id"],
            name=op.f("fk_type_edit_type_id_coin_type"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_type_edit")),
    )
    with op.batch_alter_table("type_edit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_type_edit_type_id"), ["type_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("type_edit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_type_edit_type_id"))
    op.drop_table("type_edit")
    with op.batch_alter_table("coin_type", schema=None) as batch_op:
        batch_op.drop_column("version")
