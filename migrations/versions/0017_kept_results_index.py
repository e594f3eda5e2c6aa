"""payments: an index of the results kept for replays, for dropping them once their window closes

A paid request's result (a pass's key, a gateway answer) is kept sealed for
PASSGATE_PAYMENT_REPLAY_SECONDS; ``expire_payments`` then drops it. The partial index holds only
the rows still keeping one, so the scan stays small however many payments there are.

Revision ID: 0017_kept_results_index
Revises: 0016_credit_leases
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_kept_results_index"
down_revision: str | Sequence[str] | None = "0016_credit_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEPT = sa.text("result_sealed IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_payments_kept_results", "payments", ["result_expires_at"],
                    postgresql_where=_KEPT, sqlite_where=_KEPT)


def downgrade() -> None:
    op.drop_index("ix_payments_kept_results", table_name="payments")
