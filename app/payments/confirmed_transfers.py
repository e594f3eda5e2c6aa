"""Confirmed transfers to the pay-to address that settle a recorded payment.

The chain integration (``app.integrations.chain``) offers payments every confirmed transfer
first, in the transaction that counts them. :func:`claim` takes those that belong to a payment
(a pushed transfer's hash, or the transaction our signer sent), so they are not reported as
unmatched, and settles the payment if the signer has not yet. One Transfer log must pay the
payment's amount (a pushed tx named while in the mempool was recorded before anyone could
check it): a payment whose transfer paid less fails (``underpaid``). Transfers to the pay-to
address that pay no payment (late, partial, or unannounced payments) stay unmatched for an
operator. :func:`reverse` takes a payment back when its transfer's block was orphaned
(``app.payments.take_back``).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.db import locks
from app.db.models.payments import Payment
from app.db.models.transfers import ChainTransfer
from app.db.uow import UnitOfWork
from app.payments import binding, repository
from app.payments.repository import PAYMENT
from app.payments.take_back import DISPLACED, REORGED, displace_pushes, take_back
from app.payments.transitions import mark_failed, mark_settled
from app.transfers.counting import Candidate, Counted, ReceiptSource


async def _payment_for(session: UnitOfWork, candidate: Candidate) -> Payment | None:
    # Any transaction our signer sent for a submission, not just its latest: a stuck one that
    # was replaced may still be the one that gets mined, before the signer has seen it.
    sent = await repository.signer_sent(session, candidate.chain_id, candidate.tx_hash)
    if sent is not None:
        submission = await repository.submission(session, sent)
    else:  # not sent by our signer: another party's transaction that spent the authorization
        submission = await repository.submission_settled_by(
            session, candidate.chain_id, candidate.tx_hash
        )
    if submission is not None and submission.purpose_ref.startswith("pay_"):
        return await repository.find(session, submission.purpose_ref)
    named = await repository.payments_naming(session, candidate.network, candidate.tx_hash)
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
    session: UnitOfWork, candidate: Candidate, pushed: Payment, receipts: ReceiptSource | None
) -> tuple[bool, Payment | None]:
    """Whether a pushed payment named while in the mempool turned out to spend another
    payment's authorization once mined (a call through a contract shows only then), and the
    signed payment it belongs to if that is recorded."""
    if pushed.scheme != "push" or pushed.status == "settled" or receipts is None:
        return False, None
    receipt = await receipts(candidate.tx_hash)
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


async def claim(
    session: UnitOfWork, candidates: Sequence[Candidate], *, pay_to: str,
    receipts: ReceiptSource | None,
) -> dict[str, Counted]:
    """Count the transfers to ``pay_to`` (lower-case) that pay a recorded payment, settling
    it; ``receipts`` reads a mined transaction's receipt (which authorizations it spent)."""
    counted: dict[str, Counted] = {}
    if any(candidate.to_address == pay_to for candidate in candidates):
        # Requests naming a transfer wait until this count commits, and this count waits for
        # those already recording one (``app.db.locks``).
        await locks.pushed_transfers(session, candidates[0].chain_id, counting=True)
    paid: set[str] = set()
    # Payments a transfer of theirs did not pay in full: the log that paid the most.
    short: dict[str, tuple[Payment, Candidate]] = {}
    for candidate in candidates:
        if candidate.to_address != pay_to:
            continue
        payment = await _payment_for(session, candidate)
        if payment is None:
            continue  # late, partial or unannounced: left unmatched for an operator
        taken, owner = await _authorization_owner(session, candidate, payment, receipts)
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


async def reverse(session: UnitOfWork, transfer: ChainTransfer) -> None:
    """Take back the payment a transfer settled, its block having been orphaned."""
    if not transfer.reference:
        return
    payment = await repository.find(session, transfer.reference)
    if payment is None or payment.status != "settled":
        return
    await take_back(session, payment, REORGED)
