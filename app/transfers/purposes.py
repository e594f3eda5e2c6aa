"""What a confirmed transfer is *for*, and how its effects are undone after a reorg.

The watcher stores every transfer to a receiving address, then, once it has the network's
confirmations, offers the batch to each purpose in order. The first purpose that claims a
transfer applies its effects (a deposit credit, a settled payment) in the same transaction as
the transfer's move to ``confirmed``, and sets ``transfer.purpose`` to its name. If the block is
later orphaned, the watcher calls ``reverse`` of that same purpose.

This is the seam for the x402 payments code: it adds a ``PaymentPurpose`` (claiming transfers
that settle a pending payment, by tx hash or authorization) *before* ``DepositPurpose`` in
:func:`purposes`, and its ``reverse`` flags the payment. Transfers nobody claims are kept as
``purpose="unknown"``, ``unmatched=True`` for an operator to look at.

Deposits and late wallet linking: a deposit from an address that is not linked is recorded as
unmatched and is *not* credited automatically when the address is linked later (the link
proves control today, not who the money was meant for at the time). An operator credits it with
``POST /admin/v1/transfers/{id}/assign`` (audited), which posts the same ``deposit`` entry the
automatic path would have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from app.credits import ledger
from app.db.types import rfc3339, utcnow
from app.events.service import emit
from app.transfers.models import ChainTransfer
from app.wallets import service as wallets

DEPOSIT = "deposit"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PurposeContext:
    """What purposes need to know about the watcher that found the transfers."""

    network: str
    chain_id: int
    deposit_address: str | None  # lower-case
    pay_to_address: str | None  # lower-case


class TransferPurpose(Protocol):
    name: str

    async def claim(
        self, session: AsyncSession, transfers: Sequence[ChainTransfer], ctx: PurposeContext
    ) -> list[ChainTransfer]:
        """Take the transfers that are this purpose's, apply their effects, return them."""

    async def reverse(
        self, session: AsyncSession, transfer: ChainTransfer, ctx: PurposeContext
    ) -> None:
        """Undo what ``claim`` caused for a transfer whose block was orphaned."""


def ledger_key(kind: str, transfer: ChainTransfer) -> str:
    """Idempotency key of a transfer's ledger entry: once per (chain, tx, log index), and once
    more per revival after a reorg (``epoch``)."""
    key = f"{kind}:{transfer.chain_id}:{transfer.tx_hash}:{transfer.log_index}"
    return f"{key}:{transfer.epoch}" if transfer.epoch else key


async def credit_deposit(
    session: AsyncSession, transfer: ChainTransfer, agent_id: str, *, reason: str | None = None
) -> None:
    """Credit a deposit transfer to ``agent_id`` exactly once and emit ``credits.deposited``."""
    amount = transfer.amount_micros or 0
    entry = await ledger.post(
        session, agent_id, "deposit", amount, idempotency_key=ledger_key("deposit", transfer),
        reference=transfer.id, reason=reason,
    )
    transfer.purpose = DEPOSIT
    transfer.agent_id = agent_id
    transfer.ledger_entry_id = entry.id
    transfer.unmatched = False
    await emit(
        session,
        "credits.deposited",
        {
            "agentId": agent_id,
            "amountMicros": amount,
            "balanceMicros": entry.balance_after_micros,
            "source": "deposit",
            "network": transfer.network,
            "transaction": transfer.tx_hash,
            "ledgerEntryId": entry.id,
            "depositedAt": rfc3339(entry.created_at),
        },
        agent_id=agent_id,
    )


class DepositPurpose:
    """USDC sent to the deposit address from a linked wallet becomes credits."""

    name = DEPOSIT

    async def claim(
        self, session: AsyncSession, transfers: Sequence[ChainTransfer], ctx: PurposeContext
    ) -> list[ChainTransfer]:
        if ctx.deposit_address is None:
            return []
        mine = [t for t in transfers if t.to_address == ctx.deposit_address]
        owners = await wallets.owners_of(session, (t.from_address for t in mine))
        for transfer in mine:
            transfer.purpose = DEPOSIT
            agent_id = owners.get(transfer.from_address)
            amount = transfer.amount_micros
            if amount == 0:
                continue  # zero-value transfers (address-poisoning spam) carry nothing
            if agent_id is None or amount is None:
                transfer.unmatched = True  # kept for an operator: never lost, never guessed
                continue
            await credit_deposit(session, transfer, agent_id)
        return mine

    async def reverse(
        self, session: AsyncSession, transfer: ChainTransfer, ctx: PurposeContext
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
    return [DepositPurpose()]


async def confirm(
    session: AsyncSession, transfers: Sequence[ChainTransfer], ctx: PurposeContext
) -> None:
    """Count confirmed transfers: each goes to the first purpose that claims it."""
    remaining = list(transfers)
    for purpose in purposes():
        if not remaining:
            break
        taken = {id(t) for t in await purpose.claim(session, remaining, ctx)}
        remaining = [t for t in remaining if id(t) not in taken]
    for transfer in remaining:
        transfer.purpose = UNKNOWN
        transfer.unmatched = True


async def reverse(session: AsyncSession, transfer: ChainTransfer, ctx: PurposeContext) -> None:
    """Undo a counted transfer's effects through the purpose that claimed it."""
    for purpose in purposes():
        if purpose.name == transfer.purpose:
            await purpose.reverse(session, transfer, ctx)
            transfer.reversed_at = utcnow()
            return
