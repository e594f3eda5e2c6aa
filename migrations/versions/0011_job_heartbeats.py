"""job heartbeats: each periodic job's last runs, for /v1/health

Revision ID: 0011_job_heartbeats
Revises: 0010_attention
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db.types

revision: str = "0011_job_heartbeats"
down_revision: str | Sequence[str] | None = "0010_attention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_heartbeats",
        sa.Column("job", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("queue", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("every_seconds", sa.Float(), nullable=False),
        sa.Column("last_sent_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_queue_delay_ms", sa.Integer(), nullable=True),
        sa.Column("last_failure_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("updated_at", app.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job"),
    )


def downgrade() -> None:
    op.drop_table("job_heartbeats")
