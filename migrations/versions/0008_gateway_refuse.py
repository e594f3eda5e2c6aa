"""gateway: a function the one-statement reservation calls to refuse, rolling itself back

On PostgreSQL the request path runs the credit reservation as one statement outside any
explicit transaction (no BEGIN and COMMIT round trips). When the statement finds that the
charge it just made passed a daily limit, or crossed the low-credit threshold (an event must
be emitted with it), it calls ``passgate_refuse``, whose error undoes the whole statement; the
caller then reserves on the portable path, which reports or emits exactly as before.

Revision ID: 0008_gateway_refuse
Revises: 0007_transfers_ingest
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0008_gateway_refuse"
down_revision: str | Sequence[str] | None = "0007_transfers_ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # SQLSTATE PG402 is passgate's own (class "PG" is not used by PostgreSQL).
    op.execute(
        """
        CREATE OR REPLACE FUNCTION passgate_refuse(reason text) RETURNS bigint
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'passgate: reservation refused (%)', reason USING ERRCODE = 'PG402';
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS passgate_refuse(text)")
