"""Taking a payment back after it settled: its money is gone, or was never its own.

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

from app.db.models.payments import Payment
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.keys import service as keys
from app.payments import repository
from app.payments.transitions import mark_failed

DISPLACED = ("displaced: its transaction spent the signed authorization of another payment, "
             "which that transfer pays for")
REORGED = "reorged: the settling transaction was orphaned"


async def take_back(session: UnitOfWork, payment: Payment, reason: str) -> None:
    """Fail a payment whatever its state, once, and revoke the pass it bought: its money is
    gone (orphaned by a reorg) or was never its own (displaced)."""
    if payment.status == "settled":
        # mark_failed makes the transition from an unsettled state (and emits once)
        await repository.transition(session, payment.id, ("settled",),
                                    {"status": "submitted", "updated_at": utcnow()})
    await mark_failed(session, payment.id, reason)
    await session.refresh(payment)
    if payment.result_key_id:
        key = await keys.get(session, payment.result_key_id)
        await keys.revoke(session, key)
        session.key_changed(key.id)  # often in a worker: every API process drops it


async def displace_pushes(session: UnitOfWork, payment_id: str, tx_hash: str) -> None:
    """``payment_id``, a signed payment, settled through ``tx_hash``: any pushed payment that
    named the same transaction loses it, and the transfer it was counted for is this one's."""
    payment = await repository.find(session, payment_id)
    if payment is None or payment.scheme == "push":
        return
    for rival in await repository.live_pushes_naming(session, payment.network, tx_hash.lower()):
        await take_back(session, rival, DISPLACED)
        await repository.hand_transfer_over(session, rival.id, payment)
