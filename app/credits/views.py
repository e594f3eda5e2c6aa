from __future__ import annotations

from app.credits.schemas import LedgerView
from app.db.models.credits import LedgerEntry
from app.db.types import rfc3339


def ledger_view(entry: LedgerEntry) -> LedgerView:
    return LedgerView(
        id=entry.id,
        agent_id=entry.agent_id,
        kind=entry.kind,
        amount_micros=entry.amount_micros,
        balance_after_micros=entry.balance_after_micros,
        reference=entry.reference,
        reason=entry.reason,
        created_at=rfc3339(entry.created_at) or "",
    )
