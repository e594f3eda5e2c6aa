"""payments: the resource column fits the longest gateway path

A paid gateway call is recorded with its resource, ``"<METHOD> /v1/gateway/<provider><path>"``.
At 300 characters the column refused paths past ~280 on PostgreSQL (SQLite does not enforce
lengths); gateway paths are now bounded at 2,048 characters, and the column takes the method,
the 63-character provider name and such a path.

Revision ID: 0012_payment_resource
Revises: 0011_job_heartbeats
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_payment_resource"
down_revision: str | Sequence[str] | None = "0011_job_heartbeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.alter_column("resource", existing_type=sa.String(300), type_=sa.String(2200),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.alter_column("resource", existing_type=sa.String(2200), type_=sa.String(300),
                           existing_nullable=False)
