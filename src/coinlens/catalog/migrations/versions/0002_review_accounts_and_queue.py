"""review accounts and queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Accounts (users, API tokens, web sessions), the review queue's summary of each specimen's newest
suggestions, and the specimen version that guards reviews against lost updates.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('viewer', 'reviewer', 'admin')", name=op.f("ck_user_account_role_allowed")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("name", name=op.f("uq_user_account_name")),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_api_token_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_web_session_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_session")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_web_session_session_hash")),
    )
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suggested_type_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("suggestion_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("suggestion_margin", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("decision", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch_op.create_index(
            "ix_specimen_queue", ["status", "suggestion_score", "id"], unique=False
        )
        batch_op.create_index(
            "ix_specimen_queue_margin", ["status", "suggestion_margin", "id"], unique=False
        )
        batch_op.create_index(
            "ix_specimen_queue_counts", ["status", "batch", "decision"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_specimen_suggested_type_id"), ["suggested_type_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_specimen_suggested_type_id_coin_type"),
            "coin_type",
            ["suggested_type_id"],
            ["id"],
        )
    op.execute(BACKFILL)


# The newest model version's rank-1 suggestion (and its margin over rank 2) for every specimen.
_NEWEST = (
    "FROM suggestion s1 WHERE s1.specimen_id = specimen.id AND s1.rank = 1 "
    "ORDER BY s1.model_version_id DESC LIMIT 1"
)
BACKFILL = f"""
UPDATE specimen SET
  suggested_type_id = (SELECT s1.type_id {_NEWEST}),
  suggestion_score = (SELECT s1.score {_NEWEST}),
  decision = (SELECT s1.decision {_NEWEST}),
  suggestion_margin = (SELECT s1.score - COALESCE((SELECT s2.score FROM suggestion s2
      WHERE s2.specimen_id = s1.specimen_id AND s2.model_version_id = s1.model_version_id
      AND s2.rank = 2), 0) {_NEWEST})
WHERE EXISTS (SELECT 1 FROM suggestion s WHERE s.specimen_id = specimen.id)
"""


def downgrade() -> None:
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_specimen_suggested_type_id_coin_type"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_specimen_suggested_type_id"))
        batch_op.drop_index("ix_specimen_queue_counts")
        batch_op.drop_index("ix_specimen_queue_margin")
        batch_op.drop_index("ix_specimen_queue")
        batch_op.drop_column("version")
        batch_op.drop_column("decision")
        batch_op.drop_column("suggestion_margin")
        batch_op.drop_column("suggestion_score")
        batch_op.drop_column("suggested_type_id")

    op.drop_table("web_session")
    op.drop_table("api_token")
    op.drop_table("user_account")
