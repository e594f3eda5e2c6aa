"""attention: work parked for an operator after failures a retry cannot fix

Revision ID: 0010_attention
Revises: 0009_payments_push_tx
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db.types

revision: str = "0010_attention"
down_revision: str | Sequence[str] | None = "0009_payments_push_tx"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attention_items",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_type", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("first_failed_at", app.db.types.UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", app.db.types.UTCDateTime(), nullable=False),
        sa.Column("parked_at", app.db.types.UTCDateTime(), nullable=True),
        sa.Column("resolved_at", app.db.types.UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "ref", name="uq_attention_items_kind_ref"),
    )
    op.create_index(op.f("ix_attention_items_kind"), "attention_items", ["kind"])
    op.create_index(op.f("ix_attention_items_status"), "attention_items", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_attention_items_status"), table_name="attention_items")
    op.drop_index(op.f("ix_attention_items_kind"), table_name="attention_items")
    op.drop_table("attention_items")
