"""Verifying a pushed payment: a USDC transfer the client sent itself, named by its tx hash."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec
from eth_utils.address import to_checksum_address

from chain.client import ChainClient
from chain.networks import Network
from chain.records import TransferLog
from chain.usdc import AuthorizationUse, authorization_in_calldata

__all__ = ["PushReason", "TransferVerification", "verify_pushed_transfer"]

PushReason = Literal[
    "unknown_tx", "not_confirmed", "reverted", "not_usdc", "wrong_recipient", "amount_too_low"
]


class TransferVerification(msgspec.Struct, frozen=True):
    """The outcome of checking a pushed transfer.

    On success (and on ``not_confirmed`` once mined) the matching ``Transfer`` log is
    described: ``payer`` is the token holder who paid (the log's ``from``, not the
    transaction's sender, which may be a relayer); (network, ``tx_hash``, ``log_index``) is
    the unique key of the payment. ``amount`` may exceed the price (over-payments count).

    ``authorizations`` are the EIP-3009 authorizations the transaction spends: all of them once
    mined (its ``AuthorizationUsed`` logs); while pending, the one a direct call of the token's
    ``...WithAuthorization`` functions names (a call through another contract shows nothing
    until mined). Whoever accepts a pushed transfer must refuse one that spends an
    authorization it already holds for another payment.
    """

    ok: bool
    reason: PushReason | None
    message: str
    network: str
    tx_hash: str
    payer: str | None = None
    amount: int | None = None
    block_number: int | None = None
    block_hash: str | None = None
    log_index: int | None = None
    confirmations: int = 0
    authorizations: tuple[AuthorizationUse, ...] = ()

    @property
    def retryable(self) -> bool:
        """True when the same hash may verify later (mined but too few confirmations, or still
        pending)."""
        return self.reason == "not_confirmed"


async def verify_pushed_transfer(
    client: ChainClient,
    network: Network,
    tx_hash: str,
    *,
    pay_to: str,
    min_amount: int,
) -> TransferVerification:
    """Check that ``tx_hash`` holds a confirmed USDC ``Transfer`` of >= ``min_amount`` to
    ``pay_to`` on ``network`` (``client`` is that network's client).

    One log must carry the whole amount: the payment is keyed by that log. The transaction
    counts once ``network.confirmations`` blocks hold it. RPC failures raise
    ``chain.errors.RpcUnavailable``/``RpcError``; everything else is an answer.
    """
    if to_checksum_address(client.token_address) != to_checksum_address(network.usdc_address):
        raise ValueError(f"the client does not read {network.name}'s USDC")
    tx_hash = tx_hash.lower()
    pay_to = to_checksum_address(pay_to)

    def outcome(
        reason: PushReason | None,
        message: str,
        log: TransferLog | None = None,
        confirmations: int = 0,
        authorizations: tuple[AuthorizationUse, ...] = (),
    ) -> TransferVerification:
        return TransferVerification(
            ok=reason is None,
            reason=reason,
            message=message,
            network=network.name,
            tx_hash=tx_hash,
            payer=log.from_address if log else None,
            amount=log.value if log else None,
            block_number=log.block_number if log else None,
            block_hash=log.block_hash if log else None,
            log_index=log.log_index if log else None,
            confirmations=confirmations,
            authorizations=authorizations,
        )

    receipt = await client.get_receipt(tx_hash)
    if receipt is None:
        pending = await client.rpc("eth_getTransactionByHash", [tx_hash])
        if pending:
            # Nothing is checked (amount, recipient, payer): whoever accepts this answer must
            # hold the mined transfer to the price itself.
            return outcome("not_confirmed", "The transaction is not mined yet; retry shortly.",
                           authorizations=_called_authorization(pending, client.token_address))
        return outcome("unknown_tx", f"No transaction {tx_hash} on {network.name}.")
    spent = receipt.authorizations
    if receipt.status != 1:
        return outcome("reverted", "The transaction reverted: no USDC moved.")
    if not receipt.transfers:
        return outcome(
            "not_usdc", f"The transaction moved no USDC ({network.usdc_address}) on {network.name}."
        )
    to_us = [log for log in receipt.transfers if log.to_address == pay_to]
    if not to_us:
        return outcome("wrong_recipient", f"The transaction sends no USDC to {pay_to}.")
    match = _first_sufficient(to_us, min_amount)
    if match is None:
        largest = max(to_us, key=lambda log: log.value)
        message = f"The transfer is {_usdc(largest.value)}; the price is {_usdc(min_amount)}."
        return outcome("amount_too_low", message, largest, authorizations=spent)
    head = await client.block_number()
    confirmations = max(head - match.block_number + 1, 0)
    if network.confirmed_block(head) < match.block_number:
        message = (
            f"The transfer has {confirmations} of {network.confirmations} confirmations; "
            "retry shortly."
        )
        return outcome("not_confirmed", message, match, confirmations, spent)
    return outcome(None, "Transfer verified.", match, confirmations, spent)


def _called_authorization(pending: object, token: str) -> tuple[AuthorizationUse, ...]:
    """The authorization a pending transaction spends if it calls the token directly."""
    if not isinstance(pending, dict):
        return ()
    to, data = pending.get("to"), pending.get("input") or pending.get("data")
    if not isinstance(to, str) or to.lower() != token.lower() or not isinstance(data, str):
        return ()
    use = authorization_in_calldata(data)
    return () if use is None else (use,)


def _first_sufficient(logs: list[TransferLog], min_amount: int) -> TransferLog | None:
    # Lowest log index first: the choice must be stable, since it becomes the payment's key.
    for log in sorted(logs, key=lambda item: item.log_index):
        if log.value >= min_amount:
            return log
    return None


def _usdc(micros: int) -> str:
    return f"{Decimal(micros) / Decimal(10**6):f} USDC"
