"""Where payments meet the chain side: the signer's outcomes and the watcher's transfers.

* ``on_submission_final`` runs in the transaction that makes a settlement submission final:
  mined -> the payment is settled; reverted, expired or refused -> it failed; ``already_used``
  means a transaction of someone else's spent the authorization and paid our pay-to address
  (the signer checked it and recorded its hash), so the payment settles all the same.
* ``PaymentPurpose`` claims confirmed transfers to the pay-to address that belong to a payment
  (a pushed transfer's hash, or the transaction our signer sent), so they are not reported as
  unmatched, and settles the payment if the signer has not yet. One Transfer log must pay the
  payment's amount (a pushed tx named while in the mempool was recorded before anyone could
  check it): a payment whose transfer paid less fails (``underpaid``). Transfers to the pay-to
  address that pay no payment (late, partial, or unannounced payments) stay unmatched for an
  operator.
* A reorg that orphans a settled payment's transfer marks the payment ``failed`` (reason
  ``reorged``, event ``payment.failed``) and revokes the pass key it bought: access is never
  left standing on money that is no longer there. If the transfer is mined again, the payment
  returns to ``settled``; restoring access is then an operator's decision (a new pass key).
* A transaction that spent a recorded payment's authorization pays for that payment only
  (``app.payments.binding``). A pushed payment that named it anyway, because it was presented
  before the authorization's payment was recorded, or through a wrapper contract while still
  in the mempool, loses it: it fails (reason ``displaced``), and its pass, if one was issued, is
  revoked. The authorization's payment settles.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import col, select

from app.db.models.payments import Payment
from app.db.models.signer import (
    ALREADY_USED,
    MINED,
    SettlementSubmission,
    SettlementTransaction,
)
from app.db.models.transfers import ChainTransfer
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.keys import service as keys
from app.payments import binding
from app.payments.service import mark_failed, mark_settled
from app.transfers.purposes import PAYMENT, Candidate, Counted, PurposeContext

DISPLACED = ("displaced: its transaction spent the signed authorization of another payment, "
             "which that transfer pays for")


async def on_submission_final(session: UnitOfWork, submission: SettlementSubmission) -> None:
    if not submission.purpose_ref.startswith("pay_"):
        return
    if submission.status in (MINED, ALREADY_USED):
        if not submission.tx_hash:
            # A duplicate of a submission still in flight: that one's outcome decides.
            return
        await mark_settled(session, submission.purpose_ref, submission.tx_hash)
        await displace_pushes(session, submission.purpose_ref, submission.tx_hash)
    else:
        reason = submission.last_error or f"settlement {submission.status}"
        await mark_failed(session, submission.purpose_ref, reason)


async def take_back(session: UnitOfWork, payment: Payment, reason: str) -> None:
    """Fail a payment whatever its state, once, and revoke the pass it bought: its money is
    gone (orphaned by a reorg) or was never its own (displaced)."""
    if payment.status == "settled":
        # mark_failed makes the transition from an unsettled state (and emits once)
        await session.execute(
            update(Payment).where(col(Payment.id) == payment.id, col(Payment.status) == "settled")
            .values(status="submitted", updated_at=utcnow())
        )
    await mark_failed(session, payment.id, reason)
    await session.refresh(payment)
    if payment.result_key_id:
        key = await keys.get(session, payment.result_key_id)
        await keys.revoke(session, key)


async def displace_pushes(session: UnitOfWork, payment_id: str, tx_hash: str) -> None:
    """``payment_id``, a signed payment, settled through ``tx_hash``: any pushed payment that
    named the same transaction loses it, and the transfer it was counted for is this one's."""
    payment = await session.get(Payment, payment_id)
    if payment is None or payment.scheme == "push":
        return
    rivals = (
        await session.exec(
            select(Payment).where(
                col(Payment.network) == payment.network,
                col(Payment.tx_hash) == tx_hash.lower(),
                col(Payment.scheme) == "push",
                col(Payment.status).in_(("pending", "submitted", "settled")),
            )
        )
    ).all()
    for rival in rivals:
        await take_back(session, rival, DISPLACED)
        await session.execute(
            update(ChainTransfer)
            .where(col(ChainTransfer.purpose) == PAYMENT, col(ChainTransfer.reference) == rival.id)
            .values(reference=payment.id, agent_id=payment.agent_id, updated_at=utcnow())
        )


async def _payment_for(session: UnitOfWork, candidate: Candidate) -> Payment | None:
    # Any transaction our signer sent for a submission, not just its latest: a stuck one that
    # was replaced may still be the one that gets mined, before the signer has seen it.
    sent = (
        await session.exec(
            select(SettlementTransaction.submission_id).where(
                col(SettlementTransaction.chain_id) == candidate.chain_id,
                col(SettlementTransaction.tx_hash) == candidate.tx_hash,
            )
        )
    ).first()
    if sent is not None:
        submission = await session.get(SettlementSubmission, sent)
    else:  # not sent by our signer: another party's transaction that spent the authorization
        submission = (
            await session.exec(
                select(SettlementSubmission).where(
                    col(SettlementSubmission.chain_id) == candidate.chain_id,
                    col(SettlementSubmission.tx_hash) == candidate.tx_hash,
                )
            )
        ).first()
    if submission is not None and submission.purpose_ref.startswith("pay_"):
        return await session.get(Payment, submission.purpose_ref)
    named = (
        await session.exec(
            select(Payment).where(col(Payment.network) == candidate.network,
                                  col(Payment.tx_hash) == candidate.tx_hash)
        )
    ).all()
    # A signed payment that settled through this transaction (it may carry several
    # authorizations: the one whose payer sent this log) comes before a pushed one, and a
    # pushed payment that already lost the transaction counts for nothing.
    signed = [p for p in named if p.scheme != "push"]
    for payment in signed:
        if payment.payer == candidate.from_address:
            return payment
    if signed:
        return signed[0]
    pushed = [p for p in named if p.status not in ("failed", "expired")]
    return pushed[0] if pushed else None


async def _authorization_owner(
    session: UnitOfWork, candidate: Candidate, pushed: Payment, ctx: PurposeContext
) -> tuple[bool, Payment | None]:
    """Whether a pushed payment named while in the mempool turned out to spend another
    payment's authorization once mined (a call through a contract shows only then), and the
    signed payment it belongs to if that is recorded."""
    if pushed.scheme != "push" or pushed.status == "settled" or ctx.receipts is None:
        return False, None
    receipt = await ctx.receipts(candidate.tx_hash)
    if receipt is None or not receipt.authorizations:
        return False, None
    owner = await binding.authorization_owner(session, pushed.network, receipt.authorizations)
    if owner is not None:
        return True, owner
    return await binding.authorization_submitted(session, candidate.chain_id,
                                                 receipt.authorizations), None


def _paid_to(candidate: Candidate, payment: Payment) -> int:
    if candidate.to_address != payment.pay_to.lower():
        return 0
    # Beyond BIGINT (never real USDC) is more than any price.
    return 2**63 - 1 if candidate.amount_micros is None else candidate.amount_micros


def _pays_for(candidate: Candidate, payment: Payment) -> bool:
    """One Transfer log must pay the payment's address its whole amount (more is kept, and
    visible on the transfer's row)."""
    return _paid_to(candidate, payment) >= payment.amount_micros


def _payer(candidate: Candidate, payment: Payment) -> str | None:
    # Unknown until mined for a pushed tx named while still in the mempool.
    return None if payment.payer else candidate.from_address


class PaymentPurpose:
    """Confirmed transfers to the pay-to address that settle a recorded payment."""

    name = PAYMENT

    async def claim(
        self, session: UnitOfWork, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        if ctx.pay_to_address is None:
            return {}
        counted: dict[str, Counted] = {}
        paid: set[str] = set()
        # Payments a transfer of theirs did not pay in full: the log that paid the most.
        short: dict[str, tuple[Payment, Candidate]] = {}
        for candidate in candidates:
            if candidate.to_address != ctx.pay_to_address:
                continue
            payment = await _payment_for(session, candidate)
            if payment is None:
                continue  # late, partial or unannounced: left unmatched for an operator
            taken, owner = await _authorization_owner(session, candidate, payment, ctx)
            if taken:
                await mark_failed(session, payment.id, DISPLACED)
                if owner is None:
                    continue
                payment = owner
            if not _pays_for(candidate, payment):
                # Left unmatched for an operator: too little money buys nothing.
                prior = short.get(payment.id)
                if prior is None or _paid_to(candidate, payment) > _paid_to(prior[1], payment):
                    short[payment.id] = (payment, candidate)
                continue
            await mark_settled(session, payment.id, candidate.tx_hash,
                               payer=_payer(candidate, payment))
            await displace_pushes(session, payment.id, candidate.tx_hash)
            paid.add(payment.id)
            counted[candidate.id] = Counted(PAYMENT, agent_id=payment.agent_id,
                                            reference=payment.id)
        for payment_id, (payment, candidate) in short.items():
            if payment_id not in paid:
                amount = _paid_to(candidate, payment)
                await mark_failed(session, payment_id,
                                  f"underpaid: {amount} of {payment.amount_micros} micros",
                                  payer=_payer(candidate, payment))
        return counted

    async def reverse(
        self, session: UnitOfWork, transfer: ChainTransfer, ctx: PurposeContext
    ) -> None:
        if not transfer.reference:
            return
        payment = await session.get(Payment, transfer.reference)
        if payment is None or payment.status != "settled":
            return
        await take_back(session, payment, "reorged: the settling transaction was orphaned")
