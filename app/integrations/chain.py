"""The chain integration: which area handles what the chain side reports, and the call into it.

Two things happen on chain that other areas act on, and this module is the one place that
routes them; the watcher (``app.transfers``) and the signer (``app.signer``) know nothing of
payments or credits, and no area registers itself into them:

- **A transfer to a watched address got its confirmations** (the watcher's run,
  :func:`watch`). It is offered to payments first (a transfer that settles a recorded payment:
  a pushed transfer's hash, or the transaction the signer sent for a signed one), then to
  deposits (USDC from a linked wallet to the deposit address becomes credits). The first
  purpose that claims it applies its effects in the transaction that counts the transfer;
  what nobody claims stays ``unknown`` and unmatched for an operator. If the block is later
  orphaned, the purpose that claimed the transfer undoes what it caused.
- **A settlement submission became final** (the signer's steps, :func:`advance`). A payment's
  submission settles or fails that payment, in the transaction that makes it final.

The chain actors (``workers/chain.py``) call :func:`watch` and :func:`advance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.credits import deposits
from app.db.models.signer import SettlementSubmission
from app.db.models.transfers import ChainTransfer
from app.db.uow import UnitOfWork
from app.payments import confirmed_transfers, signer_outcomes
from app.payments.repository import PAYMENT
from app.settings import Settings
from app.signer import steps
from app.signer.config import SignerConfig, Step
from app.transfers.counting import UNCLAIMED, Candidate, Counted, ReceiptSource, WatchContext
from app.transfers.watch_config import WatchConfig
from app.transfers.watcher import RunReport, run_watcher
from chain.client import ChainClient
from chain.networks import Network

# -- confirmed transfers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurposeContext:
    """What a purpose is told about the batch it is offered: where it was found, and which of
    the watched addresses is which (lower-case; None when not configured)."""

    network: str
    chain_id: int
    deposit_address: str | None
    pay_to_address: str | None
    receipts: ReceiptSource | None = None


class TransferPurpose(Protocol):
    """One kind of thing a confirmed transfer can be for."""

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


class PaymentPurpose:
    """Transfers to the pay-to address that settle a recorded payment (``app.payments``)."""

    name = PAYMENT

    async def claim(
        self, session: UnitOfWork, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        if ctx.pay_to_address is None:
            return {}
        return await confirmed_transfers.claim(session, candidates, pay_to=ctx.pay_to_address,
                                               receipts=ctx.receipts)

    async def reverse(
        self, session: UnitOfWork, transfer: ChainTransfer, ctx: PurposeContext
    ) -> None:
        await confirmed_transfers.reverse(session, transfer)


class DepositPurpose:
    """Transfers to the deposit address from a linked wallet: credits (``app.credits``)."""

    name = deposits.DEPOSIT

    async def claim(
        self, session: UnitOfWork, candidates: Sequence[Candidate], ctx: PurposeContext
    ) -> dict[str, Counted]:
        if ctx.deposit_address is None:
            return {}
        return await deposits.claim(session, candidates, ctx.deposit_address)

    async def reverse(
        self, session: UnitOfWork, transfer: ChainTransfer, ctx: PurposeContext
    ) -> None:
        await deposits.reverse(session, transfer)


def purposes() -> list[TransferPurpose]:
    """Purposes in the order they may claim a transfer (payments go before deposits)."""
    return [PaymentPurpose(), DepositPurpose()]


def _lower(address: str | None) -> str | None:
    return address.lower() if address else None


@dataclass(frozen=True, slots=True)
class TransferCounting:
    """The watcher's :class:`~app.transfers.counting.Counting`: each confirmed transfer goes to
    the first purpose that claims it; the rest are ``unknown`` and unmatched."""

    deposit_address: str | None
    pay_to_address: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> TransferCounting:
        return cls(deposit_address=_lower(settings.chain_deposit_address),
                   pay_to_address=_lower(settings.chain_pay_to_address))

    def _context(self, ctx: WatchContext) -> PurposeContext:
        return PurposeContext(network=ctx.network, chain_id=ctx.chain_id,
                              deposit_address=self.deposit_address,
                              pay_to_address=self.pay_to_address, receipts=ctx.receipts)

    async def count(
        self, session: UnitOfWork, candidates: Sequence[Candidate], ctx: WatchContext
    ) -> dict[str, Counted]:
        context = self._context(ctx)
        decided: dict[str, Counted] = {}
        remaining = list(candidates)
        for purpose in purposes():
            if not remaining:
                break
            claimed = await purpose.claim(session, remaining, context)
            if claimed:  # a backfill is thousands of candidates: filter only when it changes
                decided.update(claimed)
                remaining = [c for c in remaining if c.id not in decided]
        for candidate in remaining:
            decided[candidate.id] = UNCLAIMED
        return decided

    async def reverse(
        self, session: UnitOfWork, transfer: ChainTransfer, ctx: WatchContext
    ) -> bool:
        for purpose in purposes():
            if purpose.name == transfer.purpose:
                await purpose.reverse(session, transfer, self._context(ctx))
                return True
        return False


async def watch(
    sessions: async_sessionmaker[UnitOfWork], client: ChainClient, settings: Settings,
    network: Network, *, due_only: bool = True,
) -> RunReport:
    """One bounded watcher run over ``network``, its confirmed transfers counted here."""
    return await run_watcher(sessions, client, WatchConfig.from_settings(settings, network),
                             TransferCounting.from_settings(settings), due_only=due_only)


# -- finished settlement submissions ------------------------------------------------------


async def on_submission_final(session: UnitOfWork, submission: SettlementSubmission) -> None:
    """In the transaction that makes ``submission`` final: the area it was for reacts."""
    if submission.purpose_ref.startswith("pay_"):
        await signer_outcomes.settle_or_fail(session, submission)


async def advance(
    sessions: async_sessionmaker[UnitOfWork], client: ChainClient, config: SignerConfig,
    submission_id: str,
) -> Step:
    """Move one settlement submission one step (``app.signer.steps``)."""
    return await steps.advance(sessions, client, config, submission_id,
                               on_final=on_submission_final)


async def prepare(
    sessions: async_sessionmaker[UnitOfWork], client: ChainClient, config: SignerConfig,
    submission_id: str, *, broadcast: bool = True,
) -> Step:
    """Only the first step of a queued submission (``app.signer.steps.prepare``)."""
    return await steps.prepare(sessions, client, config, submission_id,
                               on_final=on_submission_final, broadcast=broadcast)
