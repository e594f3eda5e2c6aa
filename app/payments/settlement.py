"""Where payments meet the chain side: the signer's outcomes and the watcher's transfers.

* ``on_submission_final`` runs in the transaction that makes a settlement submission final:
  mined -> the payment is settled; reverted, expired or refused -> it failed; ``already_used``
  means the authorization (whose ``to`` is our pay-to address) was executed by someone else,
  so we were paid all the same and the payment settles.
* ``PaymentPurpose`` claims confirmed transfers to the pay-to address that belong to a payment
  (a pushed transfer's hash, or the transaction our signer sent), so they are not reported as
  unmatched, and settles the payment if the signer has not yet. Transfers to the pay-to address
  that match no payment (late, partial, or unannounced payments) stay unmatched for an operator.
* A reorg that orphans a settled payment's transfer marks the payment ``failed`` (reason
  ``reorged``, event ``payment.failed``) and revokes the pass key it bought: access is never
  left standing on money that is no longer there. If the transfer is mined again, the payment
  returns to ``settled``; restoring access is then an operator's decision (a new pass key).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.keys import service as keys
from app.payments.models import Payment
from app.payments.service import mark_failed, mark_settled
from app.settlement.models import ALREADY_USED, MINED, SettlementSubmission
from app.transfers.models import ChainTransfer
from app.transfers.purposes import Candidate, Counted, PurposeContext

PAYMENT = "payment"


async def on_submission_final(session: AsyncSession, submission: SettlementSubmission) -> None:
    if not submission.purpose_ref.startswith("pay_"):
        return
    if submission.status in (MINED, ALREADY_USED):
        await mark_settled(session, submission.purpose_ref, submission.tx_hash or "")
    else:
        reason = submission.last_error or f"settlement {submission.status}"
        await mark_failed(session, submission.purpose_ref, reason)


async def _payment_for(session: AsyncSession, candidate: Candidate) -> Payment | None:
    found = (
        await session.exec(
            select(Payment).where(col(Payment.network) == candidate.network,
                                  col(Payment.tx_hash) == candidate.tx_hash)
        )
    ).first()
    if found is not None:
        return found
    submission = (
        await session.exec(
            select(SettlementSubmission).where(
                col(SettlementSubmission.chain_id) == candidate.chain_id,
                col(SettlementSubmission.tx_hash) == candidate.tx_hash,
            )
        )
    ).first()
    if submission is None or not submission.purpose_ref.startswith("pay_"):
        return None
    return await session.get(Payment, submission.purpose_ref)


class PaymentPurpose:
    """Confirmed transfers to the pay-to address that settle a recorded payment."""

    name = PAYMENT

    async def claim(
        self, session: AsyncSession, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        if ctx.pay_to_address is None:
            return {}
        counted: dict[str, Counted] = {}
        for candidate in candidates:
            if candidate.to_address != ctx.pay_to_address:
                continue
            payment = await _payment_for(session, candidate)
            if payment is None:
                continue  # late, partial or unannounced: left unmatched for an operator
            await mark_settled(session, payment.id, candidate.tx_hash)
            counted[candidate.id] = Counted(PAYMENT, agent_id=payment.agent_id,
                                            reference=payment.id)
        return counted

    async def reverse(
        self, session: AsyncSession, transfer: ChainTransfer, ctx: PurposeContext
    ) -> None:
        if not transfer.reference:
            return
        payment = await session.get(Payment, transfer.reference)
        if payment is None or payment.status != "settled":
            return
        payment.status = "submitted"  # let mark_failed make the transition (and emit once)
        session.add(payment)
        await session.flush()
        await mark_failed(session, payment.id, "reorged: the settling transaction was orphaned")
        if payment.result_key_id:
            key = await keys.get(session, payment.result_key_id)
            await keys.revoke(session, key)
