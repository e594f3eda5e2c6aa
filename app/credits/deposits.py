"""Deposits: USDC sent to the deposit address from a linked wallet becomes credits.

The chain integration (``app.integrations.chain``) offers this area the confirmed transfers to
the deposit address that no payment claimed (:func:`claim`), in the transaction that counts
them, and the counted ones whose block was orphaned (:func:`reverse`).

Deposits and late wallet linking: a deposit from an address that is not linked is recorded as
unmatched and is *not* credited automatically when the address is linked later (the link
proves control today, not who the money was meant for at the time). An operator credits it with
``POST /admin/v1/transfers/{id}/assign`` (:func:`assign`, audited), which posts the same
``deposit`` entry the automatic path would have.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from app.audit.service import Actor, record
from app.credits import ledger
from app.db import locks
from app.db.models.agents import Agent
from app.db.models.credits import LedgerEntry
from app.db.models.transfers import CONFIRMED, ChainTransfer
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import BalanceLimitExceeded, Conflict, ValidationFailed
from app.events.service import emit
from app.transfers import service as transfers
from app.transfers.counting import Candidate, Counted
from app.wallets import service as wallets
from webhooks.events import CreditsDeposited

log = logging.getLogger("passgate.chain.deposits")

# What a deposit transfer counts as (``ChainTransfer.purpose``).
DEPOSIT = "deposit"

_UNMATCHED_DEPOSIT = Counted(DEPOSIT, unmatched=True)
_EMPTY_DEPOSIT = Counted(DEPOSIT)


class TransferLike(Protocol):
    """What crediting needs of a transfer (a stored row or a :class:`Candidate`)."""

    @property
    def id(self) -> str: ...
    @property
    def network(self) -> str: ...
    @property
    def chain_id(self) -> int: ...
    @property
    def tx_hash(self) -> str: ...
    @property
    def log_index(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def amount_micros(self) -> int | None: ...


def ledger_key(kind: str, transfer: TransferLike) -> str:
    """Idempotency key of a transfer's ledger entry: once per (chain, tx, log index), and once
    more per revival after a reorg (``epoch``)."""
    key = f"{kind}:{transfer.chain_id}:{transfer.tx_hash}:{transfer.log_index}"
    return f"{key}:{transfer.epoch}" if transfer.epoch else key


async def credit_deposit(
    session: UnitOfWork, transfer: TransferLike, agent_id: str, *, reason: str | None = None
) -> LedgerEntry:
    """Credit a deposit transfer to ``agent_id`` exactly once and emit ``credits.deposited``
    once (a replay of the same credit emits nothing again)."""
    amount = transfer.amount_micros or 0
    posted = await ledger.post_result(
        session, agent_id, "deposit", amount, idempotency_key=ledger_key("deposit", transfer),
        reference=transfer.id, reason=reason,
    )
    entry = posted.entry
    if posted.replayed:
        return entry
    await emit(
        session,
        CreditsDeposited(agent_id=agent_id, amount_micros=amount,
                         balance_micros=entry.balance_after_micros, source="deposit",
                         network=transfer.network, transaction=transfer.tx_hash,
                         ledger_entry_id=entry.id, deposited_at=entry.created_at),
        agent_id=agent_id,
    )
    return entry


async def claim(
    session: UnitOfWork, candidates: Sequence[Candidate], deposit_address: str
) -> dict[str, Counted]:
    """Count the transfers to ``deposit_address`` (lower-case): credited to the agent whose
    wallet sent them, else kept unmatched for an operator."""
    mine = [c for c in candidates if c.to_address == deposit_address]
    owners = await wallets.owners_of(session, {c.from_address for c in mine})
    # From senders nobody linked: kept for an operator, never lost, never guessed; a
    # zero-value transfer (address-poisoning spam) carries nothing to credit. One pass,
    # as a backfill may hold tens of thousands of them.
    counted: dict[str, Counted] = {
        c.id: _EMPTY_DEPOSIT if c.amount_micros == 0 else _UNMATCHED_DEPOSIT
        for c in mine if c.from_address not in owners
    }
    owned = [c for c in mine if c.from_address in owners] if owners else []
    for candidate in owned:
        agent_id = owners[candidate.from_address]
        amount = candidate.amount_micros
        if amount == 0:
            counted[candidate.id] = _EMPTY_DEPOSIT
        elif amount is None:
            counted[candidate.id] = _UNMATCHED_DEPOSIT  # too large for credits: an operator's
        else:
            try:
                entry = await credit_deposit(session, candidate, agent_id)
            except BalanceLimitExceeded:
                # Crediting it would take the balance past its maximum: kept for an
                # operator like any deposit nobody can be credited with, and the range's
                # other transfers are still counted.
                log.warning("deposit %s not credited: the balance of %s is at its maximum",
                            candidate.id, agent_id)
                counted[candidate.id] = _UNMATCHED_DEPOSIT
                continue
            counted[candidate.id] = Counted(DEPOSIT, agent_id=agent_id,
                                            ledger_entry_id=entry.id)
    return counted


async def reverse(session: UnitOfWork, transfer: ChainTransfer) -> None:
    """Take back the credit of a deposit whose block was orphaned."""
    if transfer.ledger_entry_id is None or transfer.agent_id is None:
        return
    # The agent may have spent the credit already: the reversal may take the balance below
    # zero, which is a debt the operator sees, not an error that would block the rewind.
    await ledger.post(
        session, transfer.agent_id, "reversal", -(transfer.amount_micros or 0),
        idempotency_key=ledger_key("reversal", transfer), reference=transfer.id,
        reason=f"deposit {transfer.tx_hash} was orphaned by a chain reorganisation",
        allow_negative=True,
    )


async def assign(
    session: UnitOfWork, actor: Actor, transfer_id: str, agent_id: str, reason: str
) -> ChainTransfer:
    """Credit an unmatched, confirmed deposit to an agent (the operator's decision), audited.

    The row is locked first so two operators cannot both assign it; the ledger key is the one
    the automatic credit uses, so a transfer can never be credited twice either way.
    """
    transfer = await transfers.get(session, transfer_id)
    before = transfers.snapshot(transfer)
    # Ordered with a buyer naming this transfer and with the watcher counting or orphaning it
    # (on SQLite: the write lock, taken before the re-read decides), then re-read under a row
    # lock (PostgreSQL).
    await locks.pushed_transfers(session, transfer.chain_id, counting=True)
    await session.refresh(transfer, with_for_update=True)
    if transfer.status != CONFIRMED or not transfer.unmatched:
        raise Conflict("Only a confirmed, unmatched transfer can be assigned.")
    if transfer.amount_micros is None or transfer.amount_micros <= 0:
        raise Conflict("This transfer's amount cannot be credited.")
    if await session.get(Agent, agent_id) is None:
        raise ValidationFailed("agentId does not name an agent.")
    entry = await credit_deposit(session, transfer, agent_id, reason=reason)
    transfer.purpose = DEPOSIT
    transfer.agent_id = agent_id
    transfer.ledger_entry_id = entry.id
    transfer.unmatched = False
    transfer.updated_at = utcnow()
    session.add(transfer)
    await session.flush()
    await record(session, actor, "transfer.assign", "transfer", transfer.id,
                 before=before, after={**transfers.snapshot(transfer), "reason": reason})
    return transfer
