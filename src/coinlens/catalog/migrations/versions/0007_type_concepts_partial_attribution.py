"""nomisma concepts of a type, partial attributions of a coin

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A type's authority, mint, denomination and material as nomisma.org concept URIs beside their
names (what a Nomisma export links to); a coin's partial attribution: the coarser fields a
reviewer is sure of (authority, mint, ...) while its exact type waits in review.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONCEPTS = ("authority_uri", "mint_uri", "denomination_uri", "material_uri")


def upgrade() -> None:
    with op.batch_alter_table("coin_type", schema=None) as batch_op:
        for name in CONCEPTS:
            batch_op.add_column(sa.Column(name, sa.String(length=1024), nullable=True))
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attribution", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.drop_column("attribution")
    with op.batch_alter_table("coin_type", schema=None) as batch_op:
        for name in reversed(CONCEPTS):
            batch_op.drop_column(name)
