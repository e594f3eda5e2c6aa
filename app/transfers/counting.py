"""Counting a confirmed transfer: what the watcher offers, what it writes back, and who decides.

The watcher stores every transfer to a watched address; once a transfer has the network's
confirmations it is *counted*. The watcher does not know what a transfer is for: it is given a
:class:`Counting` (the chain integration, ``app.integrations.chain``), which decides, applies
the transfer's effects in the same transaction as its move to ``confirmed``, and answers with a
:class:`Counted` per transfer, written to the transfer's row. If the block is later orphaned,
the watcher asks the same counting to ``reverse`` what it caused.

A transfer nobody claims is kept as ``purpose="unknown"``, ``unmatched=True`` for an operator to
look at (:data:`UNCLAIMED`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from app.db.models.transfers import ChainTransfer
from app.db.uow import UnitOfWork
from chain.records import Receipt

UNKNOWN = "unknown"


ReceiptSource = Callable[[str], Awaitable[Receipt | None]]


@dataclass(frozen=True, slots=True)
class WatchContext:
    """Where a batch of transfers was found.

    ``receipts`` reads a transaction's receipt from the watcher's node, for the rare transfer
    whose meaning depends on more than its Transfer log.
    """

    network: str
    chain_id: int
    receipts: ReceiptSource | None = None


class Candidate(NamedTuple):
    """A transfer that just got its confirmations, offered for counting. A plain row (not an
    ORM object, and a tuple: made straight from the result row) so that a backfill of
    thousands is counted with a few statements. A new transfer's candidate is also the row
    the watcher inserts (``app.transfers.storing``), so its fields are the table's columns."""

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


UNCLAIMED = Counted(UNKNOWN, unmatched=True)


class CountConflict(Exception):
    """Some transfers just counted were not written (another writer stored or counted them
    first). Their effects were applied in this transaction, which must be rolled back."""


class Counting(Protocol):
    """What the watcher is given to count transfers with (``app.integrations.chain``)."""

    async def count(
        self, session: UnitOfWork, candidates: Sequence[Candidate], ctx: WatchContext
    ) -> dict[str, Counted]:
        """Decide every candidate, apply its effects in ``session``, and return what was
        decided for each, by transfer id."""

    async def reverse(
        self, session: UnitOfWork, transfer: ChainTransfer, ctx: WatchContext
    ) -> bool:
        """Undo what counting a transfer caused, its block being orphaned; True when whoever
        counted it was asked to."""
