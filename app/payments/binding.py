"""Which payment an on-chain transaction belongs to: one transfer pays for exactly one thing.

A pushed payment (``X-Payment: <tx hash>``) proves nothing about who presents it, so the hash
is first-presenter-wins. That is only fair for a transfer nobody else has a claim on. Two kinds
of transaction always belong to a payment already recorded, and are never a pushed payment:

* a transaction passgate's own settlement signer signed. The signer records each one before
  it broadcasts it, so any hash that can be seen in a mempool or on an explorer is already
  here, in every timing: broadcast but pending, mined but not yet noticed, or recorded as
  settled;
* a transaction that spends the EIP-3009 authorization of a recorded payment, whoever sent it
  (a copy of the signer's call, a wrapper contract, the payer itself). The authorization's
  signer is the buyer, and the money moved under that authorization pays for its purchase.

When the two race anyway (a pushed hash recorded before the authorization's payment, or a
wrapper contract whose spending shows only once mined), the authorization's payment wins when
it settles: see ``app.payments.take_back.displace_pushes``.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.db.models.payments import Payment
from app.db.uow import UnitOfWork
from app.payments import repository
from chain.usdc import AuthorizationUse

SIGNER_TRANSACTION = "This transaction is passgate's own settlement of another payment."
SPENDS_AUTHORIZATION = (
    "This transaction spends the signed authorization of another payment: the transfer pays "
    "for that payment, not for this request."
)
SETTLED_ANOTHER = "This transaction already settled another payment."


async def signer_claim(session: UnitOfWork, network: str, chain_id: int,
                       tx_hash: str) -> str | None:
    """Why ``tx_hash`` belongs to a signed payment already (a reason), or None.

    Looks only at passgate's own records, so it can run before anything is asked of a node.
    """
    tx_hash = tx_hash.lower()
    if await repository.signer_sent(session, chain_id, tx_hash) is not None:
        return SIGNER_TRANSACTION
    settled_by = await repository.submission_settled_by(session, chain_id, tx_hash)
    exact = await repository.signed_payment_naming(session, network, tx_hash)
    if settled_by is not None or exact is not None:
        return SETTLED_ANOTHER
    return None


async def authorization_owner(
    session: UnitOfWork, network: str, uses: Iterable[AuthorizationUse]
) -> Payment | None:
    """The recorded signed payment whose authorization one of ``uses`` is, if any."""
    for use in uses:
        owner = await repository.with_authorization(session, network, use)
        if owner is not None:
            return owner
    return None


async def authorization_submitted(
    session: UnitOfWork, chain_id: int, uses: Iterable[AuthorizationUse]
) -> bool:
    """True when the settlement signer was asked to submit one of ``uses`` (for any purpose)."""
    for use in uses:
        if await repository.authorization_submitted(session, chain_id, use):
            return True
    return False
