"""The paying side, for tests and the demo: the x402 SDK's own client, set up for passgate.

Building an SDK client for passgate (what ``build_payer_client`` does)::

    from x402 import x402Client
    from x402.mechanisms.evm.exact import register_exact_evm_client
    from x402.mechanisms.evm.signers import EthAccountSigner
    from x402.http.clients import x402HttpxClient

    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(Account.from_key(key)))
    client.set_spend_controls({"max_amount_per_payment": "$10", "allowed_assets": True})
    async with x402HttpxClient(client, base_url=url) as http:
        await http.post("/v1/passes/1d")

Notes for the ``local`` network:

- v2 requirements name it ``eip155:<chain id>``; ``register_exact_evm_client`` registers
  ``eip155:*``, so any chain id signs (the chain id comes from the network string, the token
  domain from ``extra``).
- v1 clients only know fixed names; with the default chain id 84532 the dev chain is offered as
  ``base-sepolia`` (``requirements.v1_network_name``) and v1 signing works; another chain id
  leaves v1 unusable there.
- The SDK refuses payments above $1 by default and assets it does not know: passes cost
  $10-$100, and a dev chain with its own token address is unknown, hence the spend controls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_account.signers.local import LocalAccount
from x402 import x402Client
from x402.client import SpendControls
from x402.extensions.payment_identifier import append_payment_identifier_to_extensions
from x402.http import x402HTTPClient
from x402.mechanisms.evm.exact import register_exact_evm_client
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentRequired, PaymentRequiredV1
from x402.schemas.hooks import PaymentCreationContext

from chain.x402.headers import PAYMENT_REQUIRED

__all__ = [
    "PaymentHeaders", "build_payer_client", "sign_payment_headers", "with_payment_identifier",
]


def build_payer_client(
    account: LocalAccount, *, max_amount_micros: int | None = None
) -> x402Client:
    """An SDK ``x402Client`` that pays with ``account`` on any EVM network, v1 and v2.

    ``max_amount_micros`` caps one payment (None: no cap). Usable as is with the SDK's
    ``x402HttpxClient``.
    """
    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(account))
    controls: SpendControls = {
        "allowed_assets": True,
        "max_amount_per_payment": False
        if max_amount_micros is None
        else f"${Decimal(max_amount_micros) / Decimal(10**6):f}",
    }
    client.set_spend_controls(controls)
    return client


def with_payment_identifier(client: x402Client, payment_id: str) -> x402Client:
    """Send ``payment_id`` as the x402 ``payment-identifier`` of every v2 payment ``client``
    signs, when the 402 declares the extension (the SDK's ``append_payment_identifier_to_
    extensions``, in a before-payment-creation hook as the SDK's examples do)."""

    def append(context: PaymentCreationContext) -> None:
        extensions = getattr(context.payment_required, "extensions", None)
        if extensions is not None:
            append_payment_identifier_to_extensions(extensions, payment_id)

    client.on_before_payment_creation(append)
    return client


@dataclass(frozen=True, slots=True)
class PaymentHeaders:
    """Header values answering one 402: each is a separate authorization (own nonce)."""

    payment_signature: str | None  # x402 v2, from the PAYMENT-REQUIRED header
    x_payment: str | None  # x402 v1, from the JSON body

    def v2(self) -> dict[str, str]:
        if self.payment_signature is None:
            raise ValueError("the 402 answer offered no x402 v2 requirements")
        return {"PAYMENT-SIGNATURE": self.payment_signature}

    def v1(self) -> dict[str, str]:
        if self.x_payment is None:
            raise ValueError("the 402 answer offered no x402 v1 requirements")
        return {"X-PAYMENT": self.x_payment}


async def sign_payment_headers(
    client: x402Client,
    *,
    headers: Mapping[str, str],
    body: bytes | Mapping[str, Any] | None = None,
) -> PaymentHeaders:
    """Sign for a 402 answer the way SDK clients do: parse it with the SDK, let the client pick
    and sign an EIP-3009 authorization, encode the header with the SDK.

    ``headers``/``body`` are the 402 response's; either protocol version may be missing.
    """
    http = x402HTTPClient(client)
    by_name = {name.upper(): value for name, value in headers.items()}
    body_data = _json_body(body)

    v2_value: str | None = None
    if by_name.get(PAYMENT_REQUIRED):
        required = http.get_payment_required_response(by_name.get)
        v2_value = await _sign(http, required)

    v1_value: str | None = None
    if body_data is not None and body_data.get("x402Version") == 1:
        required_v1 = http.get_payment_required_response(lambda _name: None, body_data)
        v1_value = await _sign(http, required_v1)
    return PaymentHeaders(payment_signature=v2_value, x_payment=v1_value)


async def _sign(http: x402HTTPClient, required: PaymentRequired | PaymentRequiredV1) -> str:
    payload = await http.create_payment_payload(required)
    # One header, named by the payload's version (PAYMENT-SIGNATURE or X-PAYMENT).
    (value,) = http.encode_payment_signature_header(payload).values()
    return value


def _json_body(body: bytes | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if body is None:
        return None
    if isinstance(body, Mapping):
        return dict(body)
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
