"""The header that reports a settlement back to the paying client."""

from __future__ import annotations

from typing import Literal

from x402.http import encode_payment_response_header
from x402.schemas import SettleResponse

from chain.networks import Network
from chain.x402.headers import PAYMENT_RESPONSE, X_PAYMENT_RESPONSE
from chain.x402.requirements import v1_network_name

__all__ = ["settlement_response_header"]


def settlement_response_header(
    version: Literal[1, 2],
    *,
    success: bool,
    transaction: str,
    network: Network,
    payer: str | None,
    error_reason: str | None = None,
    amount: str | None = None,
) -> tuple[str, str]:
    """``(name, value)`` of the header that reports a settlement to the client.

    v2: ``PAYMENT-RESPONSE`` with the CAIP-2 network; v1: ``X-PAYMENT-RESPONSE`` with the v1
    network name. The value is base64 JSON ``{success, transaction, network, payer}``
    (plus ``errorReason`` on failure, and ``amount`` actually charged for ``upto``), encoded by
    the SDK as its clients decode it.
    """
    response = SettleResponse(
        success=success,
        transaction=transaction,
        network=network.caip2 if version == 2 else v1_network_name(network),
        payer=payer,
        error_reason=error_reason,
        amount=amount,
    )
    name = PAYMENT_RESPONSE if version == 2 else X_PAYMENT_RESPONSE
    return name, encode_payment_response_header(response)
