"""The settlement signer: submits ``transferWithAuthorization`` for queued submissions.

Each call of :func:`advance` moves one submission one step and says when to call again:

- ``queued`` -> checks that need no nonce: validity window, ``authorizationState`` (spent:
  see below, never retried), and a gas estimate, which simulates the exact calldata (a
  revert: ``failed`` with the reason, no nonce spent). Then, holding the signer lock, it
  allocates a nonce, signs an EIP-1559 transaction and **records it** (``signed``) - and only
  after that commit broadcasts it. A crash at any point after the record re-broadcasts the
  same raw bytes (same hash) instead of signing anew, so nothing is ever submitted twice.
- ``signed`` -> broadcast the recorded transaction (``broadcast``); "already known" is success.
  A settlement transaction the node calls invalid (or keeps refusing in words we do not know)
  is replaced by a 0-value self-transfer with the same nonce, so it cannot leave a gap that
  blocks every later settlement; once that is mined the submission ``failed``.
- ``broadcast`` -> look for a receipt of any of its transactions (the original or a
  replacement); with the network's confirmations it is final: ``mined``, or for a revert
  whose authorization was consumed by someone else see below, else ``reverted``.
  Not mined after ``stuck_after`` seconds: a replacement with the same nonce and fees bumped by
  ``fee_bump_percent`` (>= the 10% nodes require), or, once the authorization has expired, a
  0-value self-transfer that frees the nonce (``expired``). Meanwhile the latest transaction is
  re-sent on every check, since a restarted node forgets its mempool.

A nonce spent by someone else counts as paid (``already_used``, with that transaction's hash)
only if a transaction that spent it moved the authorized value to the authorized recipient: a
payer can also burn the nonce (``cancelAuthorization``, or another authorization on the same
nonce), and then nothing was paid (``failed``).

Serialisation: every state change happens in a transaction that starts by taking the signer
lock (``repository.lock_signer``: an UPDATE of the signer's nonce row, i.e. a row lock in
PostgreSQL and the write lock in SQLite) and re-reads the submission, so two workers, a
sweeper re-drive and a delayed message can never allocate the same nonce or finish a
submission twice. The ``settlement`` queue is meant to have a single consumer, but correctness
does not depend on it.

Nonces: the database counter is the truth while transactions are in flight; whenever the
signer has nothing in flight the node's pending count is taken instead (which is also how the
counter is recovered on start, or after someone else used the key).

RPC failures leave the state as it is and retry with exponential backoff (``app.signer.endings``).

When a submission becomes final, the ``on_final`` handler the caller gave :func:`advance` runs in
that same transaction (``app.integrations.chain`` passes the payments' reaction).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db.models.signer import (
    BROADCAST,
    EXPIRED,
    FAILED,
    FINAL_STATUSES,
    MINED,
    QUEUED,
    REVERTED,
    SIGNED,
    SettlementSubmission,
    SettlementTransaction,
)
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import NotFound
from app.signer import repository, service, upto
from app.signer.config import SignerConfig, Step
from app.signer.endings import Endings, schedule
from app.signer.service import OutcomeHandler
from app.signer.signing import CANCEL_GAS, GAS_HEADROOM_PERCENT, bumped_fees, sign
from chain.client import ChainClient
from chain.errors import ChainError, ExecutionReverted, TransactionRejected
from chain.records import FeeEstimate, Receipt
from chain.usdc import encode_transfer_with_authorization

log = logging.getLogger("passgate.settlement")

# The outcome when a 0-value self-transfer that freed the nonce was the one mined, by its kind.
_FREED_NONCE = {
    "cancel": (EXPIRED, "The authorization expired while its transaction was stuck; the nonce "
                        "was freed with a cancellation."),
    "release": (FAILED, "The node refused the settlement transaction; its nonce was freed with "
                        "a 0-value transaction and nothing was paid."),
}


async def advance(
    sessions: async_sessionmaker[UnitOfWork],
    client: ChainClient,
    config: SignerConfig,
    submission_id: str,
    *,
    on_final: OutcomeHandler,
) -> Step:
    """Move one submission one step (see the module docstring); ``on_final`` runs in the
    transaction that makes it final."""
    async with sessions() as session:
        try:
            submission = await repository.get(session, submission_id)
        except NotFound:
            return Step("missing", None)
    if submission.status in FINAL_STATUSES:
        return Step(submission.status, None)
    signer = _Signer(sessions, client, config, on_final)
    try:
        if submission.status == QUEUED:
            return await signer.prepare(submission)
        if submission.status == SIGNED:
            return await signer.broadcast(submission_id)
        return await signer.check(submission_id)
    except ChainError as exc:
        return await signer.retry_later(submission_id, exc)


async def prepare(
    sessions: async_sessionmaker[UnitOfWork],
    client: ChainClient,
    config: SignerConfig,
    submission_id: str,
    *,
    on_final: OutcomeHandler,
    broadcast: bool = True,
) -> Step:
    """Only the first step of a queued submission; ``broadcast=False`` stops right after the
    transaction is recorded (what a worker killed at that moment leaves behind)."""
    async with sessions() as session:
        submission = await repository.get(session, submission_id)
    return await _Signer(sessions, client, config, on_final).prepare(submission,
                                                                      broadcast=broadcast)


class _Signer(Endings):
    """The steps of one submission (how each ends: :class:`~app.signer.endings.Endings`)."""

    # -- queued -> signed -------------------------------------------------------------------

    async def prepare(self, submission: SettlementSubmission, *, broadcast: bool = True) -> Step:
        sid = submission.id
        now = time.time()
        if submission.valid_before <= now + self.config.min_validity_seconds:
            return await self.final(sid, QUEUED, EXPIRED,
                                    error="The authorization expired before it was submitted.")
        if now < submission.valid_after:
            return await self.later(sid, submission.valid_after - now + 1.0)
        if await self._spent(submission):
            return await self._spent_ending(submission, QUEUED)
        token, data = self._call(submission)
        try:
            gas = await self.client.estimate_gas(sender=self.config.address, to=token, data=data)
        except ExecutionReverted as exc:
            if await self._spent(submission):
                return await self._spent_ending(submission, QUEUED)
            reason = exc.reason or exc.message
            return await self.final(sid, QUEUED, FAILED, error=f"Simulation reverted: {reason}")
        fees = await self.client.estimate_fees()
        gas_limit = gas * (100 + GAS_HEADROOM_PERCENT) // 100

        async with self.sessions() as session:
            state = await repository.lock_signer(session, self.chain_id, self.config.address)
            current = await repository.reload(session, sid)
            if current.status != QUEUED:
                await session.commit()  # another run got here first: continue from its state
                return Step(current.status, 0.0)
            duplicate = await repository.in_flight_duplicate(session, current)
            if duplicate is not None:
                return await self.already_used(session, current, duplicate)
            if not await repository.signer_busy(session, self.chain_id, self.config.address):
                # Nothing of ours is pending: the node's count is authoritative (recovers the
                # counter on start, and after anyone else used the key).
                state.next_nonce = await self.client.get_nonce(self.config.address, pending=True)
                state.synced_at = utcnow()
            nonce = state.next_nonce
            tx = sign(self.config, nonce, to=token, data=data, gas=gas_limit,
                      max_fee=fees.max_fee, tip=fees.max_priority_fee, kind="settle",
                      submission_id=sid)
            session.add(tx)
            state.next_nonce = nonce + 1
            state.updated_at = utcnow()
            session.add(state)
            current.status = SIGNED
            current.signer = self.config.address.lower()
            current.tx_nonce = nonce
            current.tx_hash = tx.tx_hash
            current.last_error = None
            schedule(current, 0.0)
            session.add(current)
            await session.commit()
        log.info("settlement %s: recorded tx %s (nonce %d)", sid, tx.tx_hash, nonce)
        if not broadcast:
            return Step(SIGNED, 0.0)
        return await self.broadcast(sid)

    # -- signed -> broadcast ----------------------------------------------------------------

    async def broadcast(self, sid: str) -> Step:
        async with self.sessions() as session:
            txs = await repository.transactions_of(session, sid)
        if not txs:
            raise RuntimeError(f"settlement {sid} is signed but has no transaction")
        latest = txs[0]
        try:
            await self.client.send_raw_transaction(latest.raw_tx)
        except TransactionRejected as exc:
            if exc.kind == "nonce_too_low":
                return await self.check(sid, nonce_used=True)
            if exc.kind in ("underpriced", "fee_too_low"):
                return await self.replace(sid, latest.id)
            if exc.kind != "already_known":
                return await self.refused(sid, latest, exc)
        async with self.sessions() as session:
            await repository.lock_signer(session, self.chain_id, self.config.address)
            current = await repository.reload(session, sid)
            tx = await repository.reload_transaction(session, latest.id)
            if tx is not None and tx.broadcast_at is None:
                tx.broadcast_at = utcnow()
                session.add(tx)
            if current.status == SIGNED:
                current.status = BROADCAST
            if current.status == BROADCAST:
                schedule(current, self.config.poll_seconds)
                session.add(current)
            await session.commit()
        return Step(BROADCAST, self.config.poll_seconds)

    async def refused(
        self, sid: str, latest: SettlementTransaction, exc: TransactionRejected
    ) -> Step:
        """The node would not take our latest transaction, and not for its nonce or fees.

        A settlement transaction that will never be taken must not keep its nonce: every later
        settlement of this key would wait behind the gap. So it is replaced by a 0-value
        self-transfer (``release``) when the node calls it invalid, when a refusal we cannot
        classify has lasted ``stuck_after`` seconds, or (``cancel``) once the authorization has
        expired. Until then, and for a signer without gas money, it is retried with backoff.
        Either of the two may still be mined, and ``check`` reports whichever was.
        """
        if latest.kind == "settle":
            submission = await self._load(sid)
            if submission.valid_before <= time.time():
                return await self.replace(sid, latest.id)
            if exc.kind == "invalid" or (
                exc.kind == "other" and _age(latest.created_at) >= self.config.stuck_after_seconds
            ):
                log.warning("settlement %s: the node refused %s (%s); releasing its nonce",
                            sid, latest.tx_hash, exc.message[:200])
                return await self.replace(sid, latest.id, release=True)
        return await self.retry_later(sid, exc)

    async def _load(self, sid: str) -> SettlementSubmission:
        async with self.sessions() as session:
            return await repository.get(session, sid)

    # -- broadcast -> final -----------------------------------------------------------------

    async def check(self, sid: str, *, nonce_used: bool = False) -> Step:
        async with self.sessions() as session:
            submission = await repository.get(session, sid)
            txs = await repository.transactions_of(session, sid)
        if not txs:
            raise RuntimeError(f"settlement {sid} has no transaction to check")
        found: tuple[SettlementTransaction, Receipt] | None = None
        for tx in txs:
            receipt = await self.client.get_receipt(tx.tx_hash)
            if receipt is not None:
                found = (tx, receipt)
                break
        if found is not None:
            return await self._mined(submission, *found)
        latest = txs[0]
        if not nonce_used:
            try:
                await self.client.send_raw_transaction(latest.raw_tx)  # still in the mempool?
            except TransactionRejected as exc:
                nonce_used = exc.kind == "nonce_too_low"
        if nonce_used:
            mined_count = await self.client.get_nonce(self.config.address, pending=False)
            if mined_count > latest.nonce:
                return await self._nonce_taken(submission)
            return await self.later(sid, self.config.poll_seconds)
        sent_at = latest.broadcast_at or latest.created_at
        if _age(sent_at) >= self.config.stuck_after_seconds:
            return await self.replace(sid, latest.id)
        return await self.later(sid, self.config.poll_seconds)

    async def _mined(
        self, submission: SettlementSubmission, tx: SettlementTransaction, receipt: Receipt
    ) -> Step:
        head = await self.client.block_number()
        if head - receipt.block_number + 1 < self.config.network.confirmations:
            return await self.later(submission.id, self.config.poll_seconds)
        expected = submission.status
        freed = _FREED_NONCE.get(tx.kind)
        if freed is not None:
            status, error = freed
            return await self.final(submission.id, expected, status, error=error,
                                    tx_hash=tx.tx_hash, block_number=receipt.block_number)
        if receipt.status == 1:
            return await self.final(submission.id, expected, MINED, tx_hash=tx.tx_hash,
                                    block_number=receipt.block_number)
        if await self._spent(submission):
            return await self._spent_ending(submission, expected)
        return await self.final(submission.id, expected, REVERTED, tx_hash=tx.tx_hash,
                                block_number=receipt.block_number,
                                error="The settlement transaction reverted.")

    async def _nonce_taken(self, submission: SettlementSubmission) -> Step:
        """Our nonce was consumed by a transaction that is not ours (the key is used elsewhere):
        start over with a fresh nonce unless the authorization is gone."""
        if await self._spent(submission):
            return await self._spent_ending(submission, submission.status)
        async with self.sessions() as session:
            await repository.lock_signer(session, self.chain_id, self.config.address)
            current = await repository.reload(session, submission.id)
            if current.status in (SIGNED, BROADCAST):
                log.warning("settlement %s: nonce %s was used by another transaction; "
                            "re-queued", current.id, current.tx_nonce)
                current.status = QUEUED
                current.tx_nonce = None
                current.last_error = "Its nonce was used by another transaction; re-queued."
                schedule(current, 0.0)
                session.add(current)
            await session.commit()
        return Step(QUEUED, 0.0)

    async def replace(self, sid: str, replacing_id: str, *, release: bool = False) -> Step:
        """Same nonce, higher fees; a 0-value self-transfer instead once the authorization has
        expired (``cancel``) or when the settlement can never be taken (``release``)."""
        fees: FeeEstimate = await self.client.estimate_fees()
        async with self.sessions() as session:
            await repository.lock_signer(session, self.chain_id, self.config.address)
            current = await repository.reload(session, sid)
            txs = await repository.transactions_of(session, sid)
            if current.status not in (SIGNED, BROADCAST) or not txs or txs[0].id != replacing_id:
                await session.commit()  # someone else moved it on
                return Step(current.status, 0.0)
            old = txs[0]
            max_fee, tip = bumped_fees(old, fees, self.config.fee_bump_percent)
            if release or time.time() >= current.valid_before:
                tx = sign(self.config, old.nonce, to=self.config.address, data="0x",
                          gas=CANCEL_GAS, max_fee=max_fee, tip=tip,
                          kind="release" if release else "cancel", submission_id=sid)
            else:
                target, data = self._call(current)
                tx = sign(self.config, old.nonce, to=target, data=data,
                          gas=old.gas_limit, max_fee=max_fee, tip=tip, kind="settle",
                          submission_id=sid)
            session.add(tx)
            current.tx_hash = tx.tx_hash
            schedule(current, 0.0)
            session.add(current)
            await session.commit()
        log.info("settlement %s: replaced %s with %s %s (nonce %d, max fee %d)",
                 sid, old.tx_hash, tx.kind, tx.tx_hash, tx.nonce, max_fee)
        return await self.broadcast(sid)

    # -- what differs between an EIP-3009 and an upto (Permit2) settlement -------------------

    def _call(self, submission: SettlementSubmission) -> tuple[str, str]:
        """``(to, data)`` of the settlement transaction."""
        if upto.is_upto(submission):
            return upto.settlement_call(submission)
        data = encode_transfer_with_authorization(service.authorization_of(submission),
                                                  submission.signature)
        return self.client.token_address, data

    async def _spent(self, submission: SettlementSubmission) -> bool:
        if upto.is_upto(submission):
            return await upto.nonce_spent(self.client, submission)
        authorization = service.authorization_of(submission)
        return await self.client.authorization_state(authorization.from_address,
                                                     authorization.nonce)

    async def _spent_ending(self, submission: SettlementSubmission, expected: str) -> Step:
        if upto.is_upto(submission):
            return await self.final(
                submission.id, expected, FAILED,
                error="The Permit2 nonce was spent by a transaction that is not this "
                      "settlement's (the payer invalidated it): nothing was paid.")
        return await self.spent_elsewhere(submission.id, expected,
                                          service.authorization_of(submission))


def _age(moment: datetime) -> float:
    return (utcnow() - moment).total_seconds()
