"""How a signer step ends: the submission's final status, its next step later, or a retry with
backoff after a node problem; and whether an authorization spent by someone else paid.

Every change of state takes the signer lock first (``repository.lock_signer``) and re-reads the
submission, so a duplicate run can never finish a submission twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db.models.signer import ALREADY_USED, FAILED, FINAL_STATUSES, SettlementSubmission
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.signer import repository
from app.signer.config import SignerConfig, Step
from app.signer.service import SWEEP_GRACE_SECONDS, OutcomeHandler, finish
from chain.client import ChainClient
from chain.errors import ChainError
from chain.usdc import TransferAuthorization

log = logging.getLogger("passgate.settlement")


def schedule(submission: SettlementSubmission, delay: float) -> None:
    """Due again in ``delay`` seconds (the sweeper waits a grace beyond that)."""
    now = utcnow()
    submission.next_attempt_at = now + timedelta(seconds=delay + SWEEP_GRACE_SECONDS)
    submission.updated_at = now


class Endings:
    def __init__(
        self, sessions: async_sessionmaker[UnitOfWork], client: ChainClient,
        config: SignerConfig, on_final: OutcomeHandler,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.config = config
        self.on_final = on_final
        self.chain_id = config.network.chain_id

    async def final(
        self, sid: str, expected: str, status: str, *, error: str | None = None,
        tx_hash: str | None = None, block_number: int | None = None,
    ) -> Step:
        """Make the submission final, if it is still ``expected``."""
        async with self.sessions() as session:
            await repository.lock_signer(session, self.chain_id, self.config.address)
            current = await repository.reload(session, sid)
            if current.status != expected:
                await session.commit()
                return Step(current.status, None if current.status in FINAL_STATUSES else 0.0)
            await finish(session, current, status, on_final=self.on_final, error=error,
                         tx_hash=tx_hash, block_number=block_number)
            await session.commit()
        log.info("settlement %s: %s%s", sid, status, f" ({error})" if error else "")
        return Step(status, None)

    async def already_used(self, session: UnitOfWork, current: SettlementSubmission,
                           duplicate: SettlementSubmission) -> Step:
        """Another submission already signed this authorization: this one ends, in the
        caller's locked transaction (which it commits)."""
        await finish(session, current, ALREADY_USED, on_final=self.on_final,
                     duplicate_of=duplicate.id,
                     error="Another settlement already submitted this authorization.")
        await session.commit()
        return Step(ALREADY_USED, None)

    async def later(self, sid: str, delay: float) -> Step:
        """Nothing changed: the next step is due in ``delay`` seconds."""
        async with self.sessions() as session:
            await repository.reschedule(
                session, sid, utcnow() + timedelta(seconds=delay + SWEEP_GRACE_SECONDS)
            )
            await session.commit()
            current = await repository.get(session, sid)
        return Step(current.status, delay)

    async def retry_later(self, sid: str, exc: ChainError) -> Step:
        """A node problem: keep the state, try again with exponential backoff."""
        message = f"{type(exc).__name__}: {exc}"[:500]
        async with self.sessions() as session:
            current = await repository.get(session, sid)
            attempts = current.attempts + 1
            delay = min(self.config.max_backoff_seconds,
                        self.config.poll_seconds * 2 ** min(attempts, 16))
            await repository.reschedule(
                session, sid, utcnow() + timedelta(seconds=delay + SWEEP_GRACE_SECONDS),
                attempts=attempts, error=message,
            )
            await session.commit()
        log.warning("settlement %s: %s; retrying in %.1fs", sid, message, delay)
        return Step(current.status, delay)

    async def spent_elsewhere(
        self, sid: str, expected: str, authorization: TransferAuthorization
    ) -> Step:
        """The authorization's nonce is spent, and not by a transaction of ours that paid.

        ``authorizationState`` only says the nonce is gone: the payer may have burned it with
        ``cancelAuthorization`` or with another authorization on the same nonce, paying us
        nothing. So the submission counts as paid (``already_used``, with that transaction's
        hash) only when a transaction that spent the nonce moved at least the authorized value
        from the payer to the authorized recipient, with the network's confirmations;
        otherwise it ``failed``.
        """
        head = await self.client.block_number()
        # The nonce was spent after the payment was verified: minutes ago, well inside this.
        low = max(0, head - self.config.network.max_log_range + 1)
        payer, recipient = authorization.from_address.lower(), authorization.to_address.lower()
        for tx_hash in await self.client.authorization_uses(
            authorization.from_address, authorization.nonce, low, head
        ):
            receipt = await self.client.get_receipt(tx_hash)
            if receipt is None or receipt.status != 1:
                continue
            if not any(t.from_address.lower() == payer and t.to_address.lower() == recipient
                       and t.value >= authorization.value for t in receipt.transfers):
                continue
            if head - receipt.block_number + 1 < self.config.network.confirmations:
                return await self.later(sid, self.config.poll_seconds)
            return await self.final(sid, expected, ALREADY_USED, tx_hash=receipt.tx_hash,
                                    block_number=receipt.block_number,
                                    error="The authorization was used on chain by another "
                                          "transaction, which paid.")
        return await self.final(
            sid, expected, FAILED,
            error="The authorization's nonce was spent on chain without paying its recipient "
                  "(canceled, or used by another authorization).",
        )
