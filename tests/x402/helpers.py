"""Paying in tests: the SDK client for honest payments, hand-made payloads for broken ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402.http import encode_payment_signature_header
from x402.schemas import PaymentPayload, PaymentRequired

from chain.client import ChainClient
from chain.devchain import DevChain
from chain.networks import Network
from chain.usdc import TokenDomain, TransferAuthorization, new_nonce, sign_transfer_authorization
from chain.x402 import PaymentChallenge, SignedPayment, decode_payment
from chain.x402.payer import build_payer_client, sign_payment_headers
from tests.fixtures.chain import encode_call, transact


async def funded_account(chain: DevChain, client: ChainClient, usdc: int) -> LocalAccount:
    """A fresh key holding ``usdc`` base units (and no ETH: authorizations are gasless)."""
    account: LocalAccount = Account.create()
    if usdc:
        minter = chain.accounts[0].address
        await transact(client, minter, encode_call("mint(address,uint256)", account.address, usdc))
    return account


def decode(headers: dict[str, str], network: Network) -> SignedPayment:
    payment = decode_payment(headers, [network])
    assert isinstance(payment, SignedPayment)
    return payment


async def sdk_payment(
    account: LocalAccount,
    challenge: PaymentChallenge,
    *,
    version: int = 2,
    changes: Mapping[str, Any] | None = None,
) -> SignedPayment:
    """Pay the way an SDK client does; ``changes`` alter the v2 terms before signing."""
    client = build_payer_client(account, max_amount_micros=challenge.price_micros * 2)
    if changes:
        required = challenge.payment_required()
        required = PaymentRequired(
            x402_version=2,
            error=required.error,
            resource=required.resource,
            accepts=[accept.model_copy(update=dict(changes)) for accept in required.accepts],
        )
        payload = await client.create_payment_payload(required)
        return decode(
            {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)},
            challenge.offers[0].network,
        )
    headers = {"PAYMENT-REQUIRED": challenge.header_value()}
    signed = await sign_payment_headers(client, headers=headers, body=challenge.v1_body())
    chosen = signed.v2() if version == 2 else signed.v1()
    return decode(chosen, challenge.offers[0].network)


def handmade_payment(
    account: LocalAccount,
    challenge: PaymentChallenge,
    *,
    value: int | None = None,
    valid_after: int = 0,
    valid_before: int,
    nonce: str | None = None,
) -> SignedPayment:
    """A v2 payment with an authorization we choose field by field, signed with eth-account."""
    offer = challenge.offers[0]
    authorization = TransferAuthorization(
        from_address=account.address,
        to_address=offer.pay_to,
        value=offer.amount if value is None else value,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce=nonce or new_nonce(),
    )
    signed = sign_transfer_authorization(
        account.key, authorization, TokenDomain.for_network(offer.network)
    )
    return with_signature(authorization, signed.signature, challenge)


def with_signature(
    authorization: TransferAuthorization, signature: str, challenge: PaymentChallenge
) -> SignedPayment:
    offer = challenge.offers[0]
    inner = {
        "authorization": {
            "from": authorization.from_address,
            "to": authorization.to_address,
            "value": str(authorization.value),
            "validAfter": str(authorization.valid_after),
            "validBefore": str(authorization.valid_before),
            "nonce": authorization.nonce,
        },
        "signature": signature,
    }
    payload = PaymentPayload(x402_version=2, payload=inner, accepted=offer.requirements)
    return decode({"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}, offer.network)
