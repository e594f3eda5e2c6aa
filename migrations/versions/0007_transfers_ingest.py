"""chain transfers: drop the two indexes no query uses (cheaper ingest)

``ix_chain_transfers_reference``: nothing looks a transfer up by ``reference`` (the payment
purpose reads it off a row it already has). ``ix_chain_transfers_to_address``: every row's
``to_address`` is one of the service's one or two receiving addresses, so an index on it selects
nothing; the admin filter on it reads the table in id order either way. Each index cost an
entry per stored transfer and per count.

Revision ID: 0007_transfers_ingest
Revises: 0006_merge
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0007_transfers_ingest"
down_revision: str | Sequence[str] | None = "0006_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_chain_transfers_reference", table_name="chain_transfers")
    op.drop_index("ix_chain_transfers_to_address", table_name="chain_transfers")


def downgrade() -> None:
    op.create_index("ix_chain_transfers_to_address", "chain_transfers", ["to_address"],
                    unique=False)
    op.create_index("ix_chain_transfers_reference", "chain_transfers", ["reference"],
                    unique=False)
