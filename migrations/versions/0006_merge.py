"""merge the feature branches of the first release into one history

Revision ID: 0006_merge
Revises: 0002_wallets, 0002_webhooks, 0003_chain, 0004_gateway, 0005_payments
"""
from collections.abc import Sequence

revision: str = "0006_merge"
down_revision: str | Sequence[str] | None = (
    "0002_wallets",
    "0002_webhooks",
    "0003_chain",
    "0004_gateway",
    "0005_payments",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
