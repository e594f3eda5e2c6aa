"""A payment's reaction to its settlement submission becoming final.

Runs in the transaction that makes the submission final (the chain integration,
``app.integrations.chain``, hands it the submissions whose reference is a payment): mined ->
the payment is settled; reverted, expired or refused -> it failed; ``already_used`` means a
transaction of someone else's spent the authorization and paid our pay-to address (the signer
checked it and recorded its hash), so the payment settles all the same.
"""

from __future__ import annotations

from app.db.models.signer import ALREADY_USED, MINED, SettlementSubmission
from app.db.uow import UnitOfWork
from app.payments.take_back import displace_pushes
from app.payments.transitions import mark_failed, mark_settled


async def settle_or_fail(session: UnitOfWork, submission: SettlementSubmission) -> None:
    """Settle or fail the payment ``submission.purpose_ref`` as its submission ended."""
    if submission.status in (MINED, ALREADY_USED):
        if not submission.tx_hash:
            # A duplicate of a submission still in flight: that one's outcome decides.
            return
        await mark_settled(session, submission.purpose_ref, submission.tx_hash)
        await displace_pushes(session, submission.purpose_ref, submission.tx_hash)
    else:
        reason = submission.last_error or f"settlement {submission.status}"
        await mark_failed(session, submission.purpose_ref, reason)
