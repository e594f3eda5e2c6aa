"""payments: the x402 payment-identifier a payment is bound to

A paid request may carry an x402 v2 ``payment-identifier`` (an idempotency key chosen by the
client). The payment records it, unique across all payments, with a hash of the terms it paid
for, so a retry with the same identifier gets the first payment's outcome and is never charged
again.

Revision ID: 0013_payment_identifier
Revises: 0012_payment_resource
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_payment_identifier"
down_revision: str | Sequence[str] | None = "0012_payment_resource"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("payment_identifier", sa.String(128), nullable=True))
        batch.add_column(sa.Column("identifier_terms", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_payments_identifier", ["payment_identifier"])


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("uq_payments_identifier", type_="unique")
        batch.drop_column("identifier_terms")
        batch.drop_column("payment_identifier")
