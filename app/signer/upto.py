"""Settling an x402 ``upto`` payment: the upto proxy's ``settle`` with the amount actually used.

An upto submission is a ``SettlementSubmission`` whose ``permit2`` column holds the Permit2
terms the client signed; the signer's steps (``app.signer.steps``) treat it as any other
(recorded before broadcast, replaced when stuck, one nonce, followed to a final status) and ask
this module only two things: the transaction to send (:func:`settlement_call`) and whether the
authorization's nonce is already spent (:func:`nonce_spent`). Only passgate's signer can spend
it (the witness names it as the facilitator), so a nonce spent by a transaction that is not one
of ours means the payer invalidated it: nothing was paid (``failed``).
"""

from __future__ import annotations

from datetime import timedelta

from app.db.models.signer import QUEUED, SettlementSubmission
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict
from app.ids import new_id
from app.signer import repository
from app.signer.tasks import settle_job
from chain.client import ChainClient
from chain.networks import Network
from chain.permit2 import PERMIT2_ADDRESS, UPTO_PROXY_ADDRESS, UptoSettle, encode_nonce_bitmap
from chain.permit2 import encode_upto_settle as _encode

# The sweeper leaves a submission alone this long past its next step (as app.signer.service).
_GRACE_SECONDS = 10.0


def is_upto(submission: SettlementSubmission) -> bool:
    return submission.permit2 is not None


def settle_of(submission: SettlementSubmission) -> UptoSettle:
    terms = submission.permit2 or {}
    return UptoSettle(
        token=terms["token"], max_amount=int(terms["maxAmount"]),
        nonce=int(submission.auth_nonce, 16), deadline=submission.valid_before,
        owner=submission.authorizer, to=submission.recipient,
        facilitator=terms["facilitator"], valid_after=submission.valid_after,
        signature=submission.signature, amount=int(submission.value),
    )


def settlement_call(submission: SettlementSubmission) -> tuple[str, str]:
    """``(to, data)`` of the upto proxy's ``settle`` for this submission."""
    return UPTO_PROXY_ADDRESS, _encode(settle_of(submission))


async def nonce_spent(client: ChainClient, submission: SettlementSubmission) -> bool:
    """True once the Permit2 nonce of the submission's authorization is used (or invalidated)."""
    data, bit = encode_nonce_bitmap(submission.authorizer, int(submission.auth_nonce, 16))
    word = await client.rpc("eth_call", [{"to": PERMIT2_ADDRESS, "data": data}, "latest"])
    return bool(int(word, 16) & bit)


async def request_upto_settlement(
    session: UnitOfWork, network: Network, settle: UptoSettle, purpose_ref: str
) -> SettlementSubmission:
    """Queue a *verified* upto authorization to be settled for ``settle.amount`` (> 0, at most
    its maximum); idempotent per ``purpose_ref`` (another authorization: ``Conflict``)."""
    if not 0 < settle.amount <= settle.max_amount:
        raise ValueError("an upto settlement is more than 0 and at most the signed maximum")
    nonce = "0x" + settle.nonce.to_bytes(32, "big").hex()
    existing = await repository.for_reference(session, purpose_ref)
    if existing is not None:
        if (existing.authorizer, existing.auth_nonce, existing.value) != (
                settle.owner.lower(), nonce, str(settle.amount)):
            raise Conflict("This reference already has a settlement for another authorization.")
        return existing
    now = utcnow()
    submission = SettlementSubmission(
        id=new_id("stl"), network=network.name, chain_id=network.chain_id,
        purpose_ref=purpose_ref, signer="", authorizer=settle.owner.lower(),
        recipient=settle.to.lower(), value=str(settle.amount), valid_after=settle.valid_after,
        valid_before=settle.deadline, auth_nonce=nonce,
        signature=settle.signature if settle.signature.startswith("0x")
        else "0x" + settle.signature,
        permit2={"token": settle.token.lower(), "maxAmount": str(settle.max_amount),
                 "facilitator": settle.facilitator.lower()},
        status=QUEUED, next_attempt_at=now + timedelta(seconds=_GRACE_SECONDS),
        created_at=now, updated_at=now,
    )
    session.add(submission)
    await session.flush()
    session.enqueue(settle_job(submission.id))
    return submission
