"""Reading the three payment forms from headers, and writing the settlement response header."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from eth_account import Account
from x402.http import x402HTTPClient
from x402.schemas import SettleResponse

from chain.networks import Network, build_networks
from chain.x402 import (
    PaymentChallenge,
    PaymentHeaderError,
    PushedPayment,
    SignedPayment,
    build_payment_challenge,
    decode_payment,
    settlement_response_header,
)
from chain.x402.payer import PaymentHeaders, build_payer_client, sign_payment_headers

TX_HASH = "0x" + "ab" * 32
NETWORKS = build_networks({"base": "http://127.0.0.1:1", "local": "http://127.0.0.1:2"})
LOCAL: Network = NETWORKS["local"]


def challenge() -> PaymentChallenge:
    return build_payment_challenge(
        price_micros=10_000_000,
        networks=[LOCAL],
        pay_to="0x1111111111111111111111111111111111111111",
        max_timeout_seconds=300,
        resource_url="http://127.0.0.1/v1/passes/1d",
        description="1-day key pass",
    )


async def signed_headers() -> PaymentHeaders:
    # Signing is offline: the SDK client needs no RPC to sign an EIP-3009 authorization.
    terms = challenge()
    client = build_payer_client(Account.create(), max_amount_micros=10_000_000)
    return await sign_payment_headers(
        client, headers={"PAYMENT-REQUIRED": terms.header_value()}, body=terms.v1_body()
    )


def b64(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.b64encode(text.encode()).decode()


def rejection(headers: dict[str, str]) -> PaymentHeaderError:
    with pytest.raises(PaymentHeaderError) as caught:
        decode_payment(headers, NETWORKS.values())
    return caught.value


async def test_a_v2_payment_signature_decodes_with_the_terms_the_client_accepted() -> None:
    signed = await signed_headers()
    payment = decode_payment(signed.v2(), NETWORKS.values())
    assert isinstance(payment, SignedPayment)
    assert payment.version == 2
    assert payment.network == "eip155:84532"
    assert payment.scheme == "exact"
    assert payment.accepted is not None
    assert payment.accepted.amount == "10000000"
    assert payment.authorization.value == 10_000_000
    assert payment.authorization.to_address == "0x1111111111111111111111111111111111111111"
    assert len(payment.signature) == 2 + 130
    assert payment.response_header == "PAYMENT-RESPONSE"


async def test_a_v1_x_payment_decodes_with_its_network_name() -> None:
    signed = await signed_headers()
    payment = decode_payment(signed.v1(), NETWORKS.values())
    assert isinstance(payment, SignedPayment)
    assert payment.version == 1
    assert payment.network == "base-sepolia"
    assert payment.accepted is None
    assert payment.header == "X-PAYMENT"
    assert payment.response_header == "X-PAYMENT-RESPONSE"
    # The v1 SDK client backdates validAfter by ten minutes.
    assert payment.authorization.valid_after > 0


async def test_header_names_are_case_insensitive() -> None:
    signed = await signed_headers()
    assert isinstance(
        decode_payment({"payment-signature": signed.v2()["PAYMENT-SIGNATURE"]}, NETWORKS.values()),
        SignedPayment,
    )
    assert isinstance(
        decode_payment({"x-payment": signed.v1()["X-PAYMENT"]}, NETWORKS.values()), SignedPayment
    )


def test_a_transaction_hash_in_x_payment_is_a_pushed_payment() -> None:
    payment = decode_payment(
        {"X-Payment": TX_HASH.upper().replace("0X", "0x"), "X-Payment-Chain": "local"},
        NETWORKS.values(),
    )
    assert payment == PushedPayment(tx_hash=TX_HASH, network=LOCAL)


def test_no_payment_headers_means_no_payment() -> None:
    assert decode_payment({"Accept": "application/json"}, NETWORKS.values()) is None


@pytest.mark.parametrize(
    ("headers", "header", "complaint"),
    [
        ({"X-Payment": TX_HASH}, "X-Payment-Chain", "required"),
        (
            {"X-Payment": TX_HASH, "X-Payment-Chain": "base-sepolia"},
            "X-Payment-Chain",
            "not enabled",
        ),
        ({"X-Payment": TX_HASH, "X-Payment-Chain": "mainnet"}, "X-Payment-Chain", "not a known"),
        ({"X-Payment": "0x1234", "X-Payment-Chain": "local"}, "X-PAYMENT", "64 hex"),
        ({"X-Payment-Chain": "local"}, "X-Payment-Chain", "without"),
        ({"X-PAYMENT": "%%%"}, "X-PAYMENT", "not base64"),
        ({"X-PAYMENT": b64("not json")}, "X-PAYMENT", "not JSON"),
        ({"PAYMENT-SIGNATURE": b64([1, 2])}, "PAYMENT-SIGNATURE", "JSON object"),
        ({"PAYMENT-SIGNATURE": b64({"x402Version": 3})}, "PAYMENT-SIGNATURE", "x402Version"),
        ({"PAYMENT-SIGNATURE": b64({"x402Version": 2})}, "PAYMENT-SIGNATURE", "payload"),
        ({"PAYMENT-SIGNATURE": "A" * 20_000}, "PAYMENT-SIGNATURE", "longer"),
        # Nested 6,000 deep: a decoder recursing per level, under Python's recursion limit.
        (
            {"PAYMENT-SIGNATURE": base64.b64encode(
                b'{"x402Version": 2, "a": ' + b"[" * 6_000 + b"]" * 6_000 + b"}"
            ).decode()},
            "PAYMENT-SIGNATURE",
            "too many",
        ),
    ],
)
def test_malformed_headers_are_refused_with_a_message(
    headers: dict[str, str], header: str, complaint: str
) -> None:
    error = rejection(headers)
    assert error.header == header
    assert complaint in error.message


async def test_two_payments_at_once_are_refused() -> None:
    signed = await signed_headers()
    error = rejection({**signed.v2(), **signed.v1()})
    assert "not both" in error.message


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"nonce": "0x1234"}, "nonce"),
        ({"from": "0xnot-an-address"}, "authorization.from"),
        ({"value": "-5"}, "authorization.value"),
        ({"validBefore": "1e9"}, "authorization.validBefore"),
        ({"value": None}, "authorization.value"),
    ],
)
async def test_a_malformed_authorization_is_refused(change: dict[str, Any], complaint: str) -> None:
    signed = await signed_headers()
    payload = json.loads(base64.b64decode(signed.v2()["PAYMENT-SIGNATURE"]))
    payload["payload"]["authorization"].update(change)
    error = rejection({"PAYMENT-SIGNATURE": b64(payload)})
    assert complaint in error.message


async def test_a_permit2_payload_is_refused() -> None:
    signed = await signed_headers()
    payload = json.loads(base64.b64decode(signed.v2()["PAYMENT-SIGNATURE"]))
    payload["payload"] = {"permit2Authorization": {}, "signature": "0x00"}
    assert "Permit2" in rejection({"PAYMENT-SIGNATURE": b64(payload)}).message


@pytest.mark.parametrize(
    ("version", "name", "network"),
    [(2, "PAYMENT-RESPONSE", "eip155:84532"), (1, "X-PAYMENT-RESPONSE", "base-sepolia")],
)
def test_the_settlement_response_header_reads_back_in_the_sdk_client(
    version: int, name: str, network: str
) -> None:
    header_name, value = settlement_response_header(
        version,  # type: ignore[arg-type]
        success=True,
        transaction=TX_HASH,
        network=LOCAL,
        payer="0x2222222222222222222222222222222222222222",
    )
    assert header_name == name
    assert json.loads(base64.b64decode(value)) == {
        "success": True,
        "transaction": TX_HASH,
        "network": network,
        "payer": "0x2222222222222222222222222222222222222222",
    }
    parsed = x402HTTPClient(build_payer_client(Account.create())).get_payment_settle_response(
        {name: value}.get
    )
    assert parsed == SettleResponse(
        success=True,
        transaction=TX_HASH,
        network=network,
        payer="0x2222222222222222222222222222222222222222",
    )
