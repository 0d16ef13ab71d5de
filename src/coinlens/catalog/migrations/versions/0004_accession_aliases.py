"""accession aliases

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

A reviewer links two specimens that are the two sides of one coin: the second's photos join the
first and its accession becomes an alias of it, so that ingest and identify, run again over the
same files, add nothing twice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accession_alias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("specimen_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["specimen_id"],
            ["specimen.id"],
            name=op.f("fk_accession_alias_specimen_id_specimen"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accession_alias")),
        sa.UniqueConstraint("alias", name=op.f("uq_accession_alias_alias")),
    )
    with op.batch_alter_table("accession_alias", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_accession_alias_specimen_id"), ["specimen_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("accession_alias", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accession_alias_specimen_id"))
    op.drop_table("accession_alias")
