"""Wire shapes of credits (the holder's balance, the operator's ledger), and rows to them."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.credits.limits import MAX_CALL_MICROS
from app.db.models.credits import LedgerEntry
from app.db.types import rfc3339


class Balance(msgspec.Struct):
    """SPEC spells ``credits_usd`` / ``total_spent`` (display, USD) beside the micros."""

    credits_usd: float
    total_spent: float
    creditsMicros: int
    spentMicros: int
    # Taken into gateway credit leases and not settled yet (``app.gateway.leases``): calls
    # being paid from it right now; what they do not use comes back to ``creditsMicros``.
    heldMicros: int = 0


class AdjustmentBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    agent_id: str
    amount_micros: Annotated[int, msgspec.Meta(ge=-MAX_CALL_MICROS, le=MAX_CALL_MICROS)]
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | None = None


class AssignBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """An operator's credit of an unmatched deposit transfer to an agent."""

    agent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


class LedgerView(msgspec.Struct, rename="camel"):
    id: str
    agent_id: str
    kind: str
    amount_micros: int
    balance_after_micros: int
    reference: str | None
    reason: str | None
    created_at: str


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
