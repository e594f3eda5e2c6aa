"""attention: a credit lease the sweeper could not close is parked under a kind of its own

Until now such a lease was parked as ``gateway_reservation`` (its ref a lease id, ``lse_...``);
it becomes ``gateway_lease``, so an operator filtering by kind finds it, and the sweeper, which
now skips parked ``gateway_lease`` items, keeps skipping it.

Revision ID: 0018_gateway_lease_attention
Revises: 0017_kept_results_index
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_gateway_lease_attention"
down_revision: str | Sequence[str] | None = "0017_kept_results_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOVE = sa.text("UPDATE attention_items SET kind = :to WHERE kind = :from_ AND ref LIKE 'lse!_%' "
                "ESCAPE '!'")


def upgrade() -> None:
    op.get_bind().execute(_MOVE, {"to": "gateway_lease", "from_": "gateway_reservation"})


def downgrade() -> None:
    op.get_bind().execute(_MOVE, {"to": "gateway_reservation", "from_": "gateway_lease"})
