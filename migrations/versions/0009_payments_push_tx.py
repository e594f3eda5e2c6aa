"""payments: only a pushed payment's transaction hash is unique

A signed payment may share its settling transaction with another payment: a contract can spend
several authorizations in one transaction, and a pushed payment that named a signed payment's
transaction keeps the hash after it lost the transfer to that payment (app.payments.binding).

Revision ID: 0009_payments_push_tx
Revises: 0008_gateway_refuse
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_payments_push_tx"
down_revision: str | Sequence[str] | None = "0008_gateway_refuse"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PUSH = sa.text("scheme = 'push'")


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("uq_payments_network_tx", type_="unique")
    op.create_index("uq_payments_network_push_tx", "payments", ["network", "tx_hash"],
                    unique=True, postgresql_where=_PUSH, sqlite_where=_PUSH)
    op.create_index("ix_payments_network_tx", "payments", ["network", "tx_hash"])


def downgrade() -> None:
    op.drop_index("ix_payments_network_tx", table_name="payments")
    op.drop_index("uq_payments_network_push_tx", table_name="payments")
    with op.batch_alter_table("payments") as batch:
        batch.create_unique_constraint("uq_payments_network_tx", ["network", "tx_hash"])
