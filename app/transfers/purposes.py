"""What a confirmed transfer is *for*, and how its effects are undone after a reorg.

The watcher stores every transfer to a receiving address, then, once it has the network's
confirmations, offers the batch to each purpose in order. The first purpose that claims a
transfer applies its effects (a deposit credit, a settled payment) in the same transaction as
the transfer's move to ``confirmed``, and sets ``transfer.purpose`` to its name. If the block is
later orphaned, the watcher calls ``reverse`` of that same purpose.

This is the seam for the x402 payments code: it adds a ``PaymentPurpose`` (claiming transfers
that settle a pending payment, by tx hash or authorization) *before* ``DepositPurpose`` in
:func:`purposes`, and its ``reverse`` flags the payment. Transfers nobody claims are kept as
``purpose="unknown"``, ``unmatched=True`` for an operator to look at; a pushed payment named
after its transfer was counted takes the row over (``app.transfers.service.adopt``).

Deposits and late wallet linking: a deposit from an address that is not linked is recorded as
unmatched and is *not* credited automatically when the address is linked later (the link
proves control today, not who the money was meant for at the time). An operator credits it with
``POST /admin/v1/transfers/{id}/assign`` (audited), which posts the same ``deposit`` entry the
automatic path would have.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from app.credits import ledger
from app.db.models.credits import LedgerEntry
from app.db.models.transfers import ChainTransfer
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import BalanceLimitExceeded
from app.events.service import emit
from app.wallets import service as wallets
from chain.records import Receipt
from webhooks.events import CreditsDeposited

log = logging.getLogger("passgate.chain.deposits")

DEPOSIT = "deposit"
PAYMENT = "payment"
UNKNOWN = "unknown"


ReceiptSource = Callable[[str], Awaitable[Receipt | None]]


@dataclass(frozen=True, slots=True)
class PurposeContext:
    """What purposes need to know about the watcher that found the transfers.

    ``receipts`` reads a transaction's receipt from the watcher's node, for the rare transfer
    whose purpose depends on more than its Transfer log (a pushed payment named while in the
    mempool: which authorizations did the mined transaction spend?).
    """

    network: str
    chain_id: int
    deposit_address: str | None  # lower-case
    pay_to_address: str | None  # lower-case
    receipts: ReceiptSource | None = None


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


class Candidate(NamedTuple):
    """A transfer that just got its confirmations, offered to the purposes. A plain row
    (not an ORM object, and a tuple: made straight from the result row) so that a backfill of
    thousands is counted with a few statements. A new transfer's candidate is also the row
    the watcher inserts (``app.transfers.service``), so its fields are the table's columns."""

    id: str
    network: str
    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    from_address: str  # lower-case
    to_address: str  # lower-case
    amount_micros: int | None
    epoch: int
    block_hash: str
    value: str  # the exact uint256, in decimal


@dataclass(frozen=True, slots=True)
class Counted:
    """What counting a transfer decided (written to its row)."""

    purpose: str
    unmatched: bool = False
    agent_id: str | None = None
    ledger_entry_id: str | None = None
    reference: str | None = None


_UNCLAIMED = Counted(UNKNOWN, unmatched=True)
_UNMATCHED_DEPOSIT = Counted(DEPOSIT, unmatched=True)
_EMPTY_DEPOSIT = Counted(DEPOSIT)


class TransferPurpose(Protocol):
    name: str

    async def claim(
        self, session: UnitOfWork, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        """Take the transfers that are this purpose's, apply their effects, and return what
        was decided for each of them, by transfer id."""

    async def reverse(
        self, session: UnitOfWork, transfer: ChainTransfer, ctx: PurposeContext
    ) -> None:
        """Undo what ``claim`` caused for a transfer whose block was orphaned."""


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


class DepositPurpose:
    """USDC sent to the deposit address from a linked wallet becomes credits."""

    name = DEPOSIT

    async def claim(
        self, session: UnitOfWork, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        if ctx.deposit_address is None:
            return {}
        deposit = ctx.deposit_address
        mine = [c for c in candidates if c.to_address == deposit]
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

    async def reverse(
        self, session: UnitOfWork, transfer: ChainTransfer, ctx: PurposeContext
    ) -> None:
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


def purposes() -> list[TransferPurpose]:
    """Purposes in the order they may claim a transfer (payments go before deposits)."""
    # Imported here: payments import this module's types.
    from app.payments.settlement import PaymentPurpose

    return [PaymentPurpose(), DepositPurpose()]


async def confirm(
    session: UnitOfWork, candidates: Sequence[Candidate], ctx: PurposeContext
) -> dict[str, Counted]:
    """Count confirmed transfers: each goes to the first purpose that claims it; the rest are
    ``unknown`` and unmatched."""
    decided: dict[str, Counted] = {}
    remaining = list(candidates)
    for purpose in purposes():
        if not remaining:
            break
        claimed = await purpose.claim(session, remaining, ctx)
        if claimed:  # a backfill is thousands of candidates: filter only when it changes them
            decided.update(claimed)
            remaining = [c for c in remaining if c.id not in decided]
    for candidate in remaining:
        decided[candidate.id] = _UNCLAIMED
    return decided


async def reverse(session: UnitOfWork, transfer: ChainTransfer, ctx: PurposeContext) -> None:
    """Undo a counted transfer's effects through the purpose that claimed it."""
    for purpose in purposes():
        if purpose.name == transfer.purpose:
            await purpose.reverse(session, transfer, ctx)
            transfer.reversed_at = utcnow()
            return
