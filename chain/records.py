"""What a chain client answers: small frozen records with plain ``int``/``str`` fields
(checksummed addresses, lowercase ``0x`` hex hashes)."""

from __future__ import annotations

import msgspec

from chain.usdc import AuthorizationUse

__all__ = ["BlockHeader", "FeeEstimate", "Receipt", "SimulationResult", "TransferLog"]


class BlockHeader(msgspec.Struct, frozen=True):
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    base_fee_per_gas: int | None = None


class TransferLog(msgspec.Struct, frozen=True, gc=False):
    """A decoded ERC-20 ``Transfer`` log; unique by (chain, ``tx_hash``, ``log_index``).

    ``gc=False`` (only ints and strings inside, so it cannot be part of a cycle): a backfill
    keeps tens of thousands alive across collections, and tracked, each would count towards
    the next full collection of the whole heap (0.1-0.2 s each, measured in the watcher)."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    from_address: str
    to_address: str
    value: int


class Receipt(msgspec.Struct, frozen=True):
    """A mined transaction. ``transfers`` are the token's Transfer logs inside it, and
    ``authorizations`` the EIP-3009 authorizations it spent (the token's ``AuthorizationUsed``
    logs)."""

    tx_hash: str
    status: int  # 1 success, 0 reverted
    block_number: int
    block_hash: str
    from_address: str
    to_address: str | None
    gas_used: int
    effective_gas_price: int
    transfers: tuple[TransferLog, ...]
    authorizations: tuple[AuthorizationUse, ...] = ()


class FeeEstimate(msgspec.Struct, frozen=True):
    """EIP-1559 fees in wei. ``max_fee`` = 2 x base fee + tip, which stays valid through
    several consecutive full blocks (each may raise the base fee by 12.5%)."""

    base_fee: int
    max_priority_fee: int
    max_fee: int


class SimulationResult(msgspec.Struct, frozen=True):
    ok: bool
    reason: str | None = None
