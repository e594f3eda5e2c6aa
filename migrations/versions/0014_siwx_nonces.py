"""siwx_nonces: the sign-in-with-x nonces already spent

A nonce is issued without a row (it carries a MAC over its issue and expiry times); spending
it inserts one, so a second message with the same nonce fails on the primary key, whatever the
number of API processes. Rows are purged once the message they were issued for has expired.

Revision ID: 0014_siwx_nonces
Revises: 0013_payment_identifier
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.types import UTCDateTime

revision: str = "0014_siwx_nonces"
down_revision: str | Sequence[str] | None = "0013_payment_identifier"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "siwx_nonces",
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_siwx_nonces_expires_at", "siwx_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_siwx_nonces_expires_at", table_name="siwx_nonces")
    op.drop_table("siwx_nonces")
