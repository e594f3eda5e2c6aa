"""Signing the signer's transactions: a settlement, its fee-bumped replacement, or a 0-value
self-transfer that frees a nonce. Signed and recorded before anything is broadcast."""

from __future__ import annotations

from eth_account import Account

from app.db.models.signer import SettlementTransaction
from app.ids import new_id
from app.signer.config import SignerConfig
from chain.records import FeeEstimate

# Gas estimates get this much headroom (the authorization's storage writes vary slightly).
GAS_HEADROOM_PERCENT = 25
CANCEL_GAS = 21_000


def sign(
    config: SignerConfig, nonce: int, *, to: str, data: str, gas: int, max_fee: int, tip: int,
    kind: str, submission_id: str,
) -> SettlementTransaction:
    """An EIP-1559 transaction of the signer's, signed, as the row that records it."""
    chain_id = config.network.chain_id
    fields = {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "to": to,
        "value": 0,
        "data": data,
        "gas": gas,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": tip,
    }
    signed = Account.sign_transaction(fields, config.key.get_secret_value())
    return SettlementTransaction(
        id=new_id("stx"),
        submission_id=submission_id,
        chain_id=chain_id,
        signer=config.address.lower(),
        nonce=nonce,
        tx_hash="0x" + bytes(signed.hash).hex(),
        raw_tx="0x" + bytes(signed.raw_transaction).hex(),
        kind=kind,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
        gas_limit=gas,
    )


def bumped_fees(
    old: SettlementTransaction, fees: FeeEstimate, bump_percent: int
) -> tuple[int, int]:
    """``(max fee, tip)`` of a replacement: at least ``bump_percent`` above the old ones (nodes
    take a replacement only if it pays more), and at least what the node asks now."""
    bump = 100 + bump_percent
    tip = max(old.max_priority_fee_per_gas * bump // 100 + 1, fees.max_priority_fee)
    max_fee = max(old.max_fee_per_gas * bump // 100 + 1, fees.max_fee, tip)
    return max_fee, tip
