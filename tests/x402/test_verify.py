"""Verifying signed payments on a real anvil with the SDK's exact-EVM verifier."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from x402.mechanisms.evm.constants import ERC6492_MAGIC_VALUE

from chain.client import ChainClient
from chain.devchain import DevChain, free_port
from chain.errors import RpcUnavailable
from chain.networks import Network
from chain.usdc import encode_transfer_with_authorization
from chain.x402 import PaymentChallenge, PaymentVerification, SignedPayment, verify_signed_payment
from chain.x402.reader import ChainReader, VerificationOnly
from tests.fixtures.chain import transact
from tests.x402.conftest import PRICE
from tests.x402.helpers import funded_account, handmade_payment, sdk_payment, with_signature

pytestmark = pytest.mark.chain

OTHER = "0x000000000000000000000000000000000000dEaD"
# Runtime code answering every call with the EIP-1271 magic value 0x1626ba7e: a smart wallet
# that accepts any signature (the token's own check still decides).
ALWAYS_VALID_1271 = "0x7f1626ba7e" + "00" * 28 + "60005260206000f3"


async def verify(
    payment: SignedPayment, challenge: PaymentChallenge, client: ChainClient
) -> PaymentVerification:
    return await verify_signed_payment(payment, challenge, {"local": client})


async def test_a_payment_signed_by_the_sdk_client_verifies(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge, pay_to: str
) -> None:
    # Given a payer holding enough USDC and a v2 payment made by the SDK client
    payer = await funded_account(devchain, chain_client, PRICE)
    payment = await sdk_payment(payer, challenge)
    # When it is verified
    result = await verify(payment, challenge, chain_client)
    # Then it is valid, with everything settlement needs
    assert result.ok, result.message
    assert result.reason is None
    assert (result.payer, result.amount, result.network) == (payer.address, PRICE, "local")
    assert result.nonce == payment.authorization.nonce
    assert result.valid_before == payment.authorization.valid_before
    assert result.authorization.to_address == pay_to
    assert result.wallet == "eoa"
    assert result.version == 2
    # and what the settlement signer would submit succeeds in simulation
    simulated = await chain_client.simulate_transfer_with_authorization(
        result.authorization, result.signature
    )
    assert simulated.ok


async def test_a_v1_x_payment_round_trip_verifies(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge
) -> None:
    payer = await funded_account(devchain, chain_client, PRICE)
    payment = await sdk_payment(payer, challenge, version=1)
    result = await verify(payment, challenge, chain_client)
    assert result.ok, result.message
    assert result.version == 1
    assert result.network == "local"


async def test_verification_moves_no_money(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge, pay_to: str
) -> None:
    payer = await funded_account(devchain, chain_client, PRICE)
    payment = await sdk_payment(payer, challenge)
    for _ in range(2):
        assert (await verify(payment, challenge, chain_client)).ok
    assert await chain_client.balance_of(payer.address) == PRICE
    assert await chain_client.balance_of(pay_to) == 0
    assert not await chain_client.authorization_state(payer.address, payment.authorization.nonce)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pay_to": OTHER}, "wrong_pay_to"),
        ({"amount": str(PRICE - 1)}, "wrong_amount"),
        ({"asset": OTHER}, "wrong_asset"),
        ({"network": "eip155:8453"}, "wrong_network"),
    ],
)
async def test_a_payment_for_other_terms_is_refused(
    devchain: DevChain,
    chain_client: ChainClient,
    challenge: PaymentChallenge,
    changes: dict[str, str],
    reason: str,
) -> None:
    # Given a payment the SDK client signed against terms we did not offer
    payer = await funded_account(devchain, chain_client, PRICE)
    payment = await sdk_payment(payer, challenge, changes=changes)
    # When it is verified
    result = await verify(payment, challenge, chain_client)
    # Then it is refused with that reason and a message
    assert not result.ok
    assert result.reason == reason
    assert result.message
    assert await chain_client.balance_of(payer.address) == PRICE


async def test_a_v1_payment_for_a_smaller_amount_is_refused(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge
) -> None:
    # v1 names no terms: the authorization itself is compared with the price.
    payer = await funded_account(devchain, chain_client, PRICE)
    payment = handmade_payment(payer, challenge, value=PRICE - 1, valid_before=_in(300))
    result = await verify(payment, challenge, chain_client)
    assert result.reason == "wrong_amount"
    assert "10 USDC" in result.message


@pytest.mark.parametrize("valid_before", [-60, 5], ids=["past", "too-soon-to-settle"])
async def test_an_expired_authorization_is_refused(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge, valid_before: int
) -> None:
    payer = await funded_account(devchain, chain_client, PRICE)
    payment = handmade_payment(payer, challenge, valid_before=_in(valid_before))
    result = await verify(payment, challenge, chain_client)
    assert result.reason == "expired"


async def test_an_authorization_not_valid_yet_is_refused(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge
) -> None:
    payer = await funded_account(devchain, chain_client, PRICE)
    payment = handmade_payment(payer, challenge, valid_after=_in(3600), valid_before=_in(7200))
    result = await verify(payment, challenge, chain_client)
    assert result.reason == "not_yet_valid"


async def test_a_tampered_signature_is_refused(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge
) -> None:
    payer = await funded_account(devchain, chain_client, PRICE)
    honest = await sdk_payment(payer, challenge)
    # Flip one bit of r: the signature recovers to some other address.
    tampered = (
        honest.signature[:10] + f"{int(honest.signature[10], 16) ^ 1:x}" + honest.signature[11:]
    )
    payment = with_signature(honest.authorization, tampered, challenge)
    result = await verify(payment, challenge, chain_client)
    assert result.reason == "invalid_signature"


async def test_a_signature_by_another_key_is_refused(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge
) -> None:
    payer = await funded_account(devchain, chain_client, PRICE)
    honest = await sdk_payment(payer, challenge)
    forged = await sdk_payment(Account.create(), challenge)
    payment = with_signature(honest.authorization, forged.signature, challenge)
    assert (await verify(payment, challenge, chain_client)).reason == "invalid_signature"


async def test_a_payer_without_usdc_is_refused(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge
) -> None:
    payer = await funded_account(devchain, chain_client, 0)
    payment = await sdk_payment(payer, challenge)
    result = await verify(payment, challenge, chain_client)
    assert result.reason == "insufficient_balance"
    assert result.message == "The payer holds 0 USDC; the payment needs 10 USDC."
    assert not result.already_used


async def test_an_authorization_already_used_on_chain_is_refused(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge, pay_to: str
) -> None:
    # Given a payment whose authorization someone already submitted to the token
    payer = await funded_account(devchain, chain_client, 2 * PRICE)
    payment = await sdk_payment(payer, challenge)
    calldata = encode_transfer_with_authorization(payment.authorization, payment.signature)
    await transact(chain_client, devchain.accounts[1].address, calldata)
    assert await chain_client.balance_of(pay_to) == PRICE
    # When the same payment is verified
    result = await verify(payment, challenge, chain_client)
    # Then its nonce is reported used (the API answers PAYMENT_ALREADY_USED)
    assert result.reason == "nonce_used"
    assert result.already_used


async def test_an_undeployed_smart_wallet_signature_is_refused(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge
) -> None:
    # Given an ERC-6492 signature: a factory call that would deploy the payer, then its signature
    payer = await funded_account(devchain, chain_client, PRICE)
    honest = await sdk_payment(payer, challenge)
    inner = bytes.fromhex(honest.signature[2:])
    wrapped = abi_encode(["address", "bytes", "bytes"], [OTHER, b"\x01\x02", inner])
    signature = "0x" + (wrapped + ERC6492_MAGIC_VALUE).hex()
    payment = with_signature(honest.authorization, signature, challenge)
    # When it is verified, then it is refused: no factory is trusted
    result = await verify(payment, challenge, chain_client)
    assert result.reason == "unsupported_wallet"
    assert result.wallet == "smart_wallet"
    assert "ERC-6492" in result.message


async def test_a_payer_with_code_is_verified_as_a_smart_wallet(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge
) -> None:
    # Given a payer whose address holds code that accepts signatures (EIP-1271), like an
    # EIP-7702 delegated EOA, and a payment it signed
    payer = await funded_account(devchain, chain_client, PRICE)
    await chain_client.rpc("anvil_setCode", [payer.address, ALWAYS_VALID_1271])
    payment = await sdk_payment(payer, challenge)
    # When it is verified, then the smart-wallet path accepts it
    result = await verify(payment, challenge, chain_client)
    assert result.ok, result.message
    assert result.wallet == "smart_wallet"


async def test_an_unreachable_node_raises_instead_of_refusing_the_payment(
    devchain: DevChain, chain_client: ChainClient, challenge: PaymentChallenge, network: Network
) -> None:
    payer = await funded_account(devchain, chain_client, PRICE)
    payment = await sdk_payment(payer, challenge)
    dead = ChainClient(
        f"http://127.0.0.1:{free_port()}", token_address=network.usdc_address, timeout=2
    )
    async with dead:
        with pytest.raises(RpcUnavailable):
            await verify(payment, challenge, dead)


def _in(seconds: int) -> int:
    return int(time.time()) + seconds


async def test_the_chain_reader_never_blocks_the_loop_nor_sends_transactions(
    chain_client: ChainClient,
) -> None:
    reader = ChainReader(chain_client, asyncio.get_running_loop())
    # Called on the loop thread it would wait for itself forever: it refuses instead.
    with pytest.raises(RuntimeError, match="worker thread"):
        reader.get_code(OTHER)
    # From a worker thread it reads through the loop's client.
    assert await asyncio.to_thread(reader.get_code, OTHER) == b""
    with pytest.raises(VerificationOnly):
        reader.send_transaction(OTHER, b"")
    with pytest.raises(VerificationOnly):
        reader.write_contract(OTHER, [], "transfer")
