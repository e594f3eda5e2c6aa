"""Credit leases: one API process pays many gateway calls from one hold on a balance

- ``gateway_credit_leases``: what a process took from an agent's balance, what it used, and
  when it expires (``app.gateway.leases``);
- ``gateway_usage.lease_id``: the lease a call was paid from (NULL: it reserved its own price);
- ``agents.held_micros``: what open leases took from the balance (neither spent nor available).

Revision ID: 0016_credit_leases
Revises: 0015_upto
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.types import UTCDateTime

revision: str = "0016_credit_leases"
down_revision: str | Sequence[str] | None = "0015_upto"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_credit_leases",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("agent_id", sa.String(length=40), sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("platform_id", sa.String(length=40), nullable=True),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("used_micros", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("closed_by", sa.String(length=10), nullable=True),
    )
    op.create_index("ix_gateway_credit_leases_agent_state", "gateway_credit_leases",
                    ["agent_id", "state"])
    op.create_index("ix_gateway_credit_leases_state_expires", "gateway_credit_leases",
                    ["state", "expires_at"])
    with op.batch_alter_table("gateway_usage") as batch:
        batch.add_column(sa.Column("lease_id", sa.String(length=40), nullable=True))
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("held_micros", sa.BigInteger(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("held_micros")
    with op.batch_alter_table("gateway_usage") as batch:
        batch.drop_column("lease_id")
    op.drop_index("ix_gateway_credit_leases_state_expires", table_name="gateway_credit_leases")
    op.drop_index("ix_gateway_credit_leases_agent_state", table_name="gateway_credit_leases")
    op.drop_table("gateway_credit_leases")
