"""upto: usage-priced gateway calls (x402 ``upto`` over Permit2)

- ``gateway_providers.usage_pricing``: a provider's price per unit of the usage its upstream
  reports, with a maximum per call (NULL: a fixed price);
- ``payments.authorized_micros``: the most an ``upto`` payment's client authorized
  (``amount_micros`` is what it was charged);
- ``settlement_submissions.permit2``: the Permit2 terms of an ``upto`` settlement (NULL for an
  EIP-3009 authorization).

Revision ID: 0015_upto
Revises: 0014_siwx_nonces
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_upto"
down_revision: str | Sequence[str] | None = "0014_siwx_nonces"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_providers") as batch:
        batch.add_column(sa.Column("usage_pricing", sa.JSON(), nullable=True))
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("authorized_micros", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("settlement_submissions") as batch:
        batch.add_column(sa.Column("permit2", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("settlement_submissions") as batch:
        batch.drop_column("permit2")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("authorized_micros")
    with op.batch_alter_table("gateway_providers") as batch:
        batch.drop_column("usage_pricing")
