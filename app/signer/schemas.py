"""Wire shape of a settlement submission (the operator's view and the payments code's)."""

from __future__ import annotations

import msgspec

from app.db.models.signer import FINAL_STATUSES, MINED, SettlementSubmission
from app.db.types import rfc3339


class SettlementOutcome(msgspec.Struct, frozen=True, rename="camel"):
    """Where a settlement stands. ``final`` once nothing more will happen to it."""

    id: str
    status: str
    final: bool
    settled: bool
    network: str
    purpose_ref: str
    tx_hash: str | None
    block_number: int | None
    error: str | None
    duplicate_of: str | None
    created_at: str
    completed_at: str | None


def outcome_view(submission: SettlementSubmission) -> SettlementOutcome:
    return SettlementOutcome(
        id=submission.id,
        status=submission.status,
        final=submission.status in FINAL_STATUSES,
        settled=submission.status == MINED,
        network=submission.network,
        purpose_ref=submission.purpose_ref,
        tx_hash=submission.tx_hash,
        block_number=submission.block_number,
        error=submission.last_error,
        duplicate_of=submission.duplicate_of,
        created_at=rfc3339(submission.created_at) or "",
        completed_at=rfc3339(submission.completed_at),
    )
