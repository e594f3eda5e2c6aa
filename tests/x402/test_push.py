"""Pushed payments: a USDC transfer the client sent, checked from its receipt on anvil."""

from __future__ import annotations

import pytest
from eth_account import Account

from chain.client import ChainClient
from chain.devchain import DevChain
from chain.networks import Network
from chain.x402 import TransferVerification, verify_pushed_transfer
from tests.fixtures.chain import encode_call, transact, wait_for_receipt
from tests.x402.conftest import PRICE, local_network

pytestmark = pytest.mark.chain


async def push(client: ChainClient, chain: DevChain, to: str, amount: int) -> str:
    """Send ``amount`` USDC from a funded dev account; returns the mined tx hash."""
    sender = chain.accounts[2].address
    return await transact(client, sender, encode_call("transfer(address,uint256)", to, amount))


async def check(
    client: ChainClient, network: Network, tx_hash: str, pay_to: str
) -> TransferVerification:
    return await verify_pushed_transfer(client, network, tx_hash, pay_to=pay_to, min_amount=PRICE)


async def test_a_confirmed_transfer_to_pay_to_verifies(
    devchain: DevChain, chain_client: ChainClient, network: Network, pay_to: str
) -> None:
    # Given a transfer of the price to our address, mined
    tx_hash = await push(chain_client, devchain, pay_to, PRICE)
    receipt = await wait_for_receipt(chain_client, tx_hash)
    # When it is verified
    result = await check(chain_client, network, tx_hash, pay_to)
    # Then it counts, with the key of the payment
    assert result.ok, result.message
    assert result.payer == devchain.accounts[2].address
    assert result.amount == PRICE
    assert result.block_number == receipt.block_number
    assert result.block_hash == receipt.block_hash
    assert result.log_index == receipt.transfers[0].log_index
    assert result.confirmations >= 1


async def test_an_overpayment_verifies_with_its_full_amount(
    devchain: DevChain, chain_client: ChainClient, network: Network, pay_to: str
) -> None:
    tx_hash = await push(chain_client, devchain, pay_to, PRICE + 1)
    result = await check(chain_client, network, tx_hash, pay_to)
    assert result.ok
    assert result.amount == PRICE + 1


async def test_an_unknown_hash_is_refused(
    chain_client: ChainClient, network: Network, pay_to: str
) -> None:
    result = await check(chain_client, network, "0x" + "12" * 32, pay_to)
    assert result.reason == "unknown_tx"
    assert not result.retryable


async def test_a_transfer_to_another_address_is_refused(
    devchain: DevChain, chain_client: ChainClient, network: Network, pay_to: str
) -> None:
    tx_hash = await push(chain_client, devchain, Account.create().address, PRICE)
    result = await check(chain_client, network, tx_hash, pay_to)
    assert result.reason == "wrong_recipient"


async def test_a_transfer_below_the_price_is_refused(
    devchain: DevChain, chain_client: ChainClient, network: Network, pay_to: str
) -> None:
    tx_hash = await push(chain_client, devchain, pay_to, PRICE - 1)
    result = await check(chain_client, network, tx_hash, pay_to)
    assert result.reason == "amount_too_low"
    assert result.amount == PRICE - 1
    assert "10 USDC" in result.message


async def test_a_transfer_counts_only_after_the_network_confirmations(
    devchain: DevChain, chain_client: ChainClient, pay_to: str
) -> None:
    # Given a network that wants 2 confirmations, and a transfer just mined (automine)
    network = local_network(devchain, confirmations=2)
    tx_hash = await push(chain_client, devchain, pay_to, PRICE)
    # When it is verified at once, then it is not confirmed yet but already described
    early = await check(chain_client, network, tx_hash, pay_to)
    assert early.reason == "not_confirmed"
    assert early.retryable
    assert early.confirmations == 1
    assert early.amount == PRICE
    # When one more block is mined, then it counts
    await chain_client.rpc("evm_mine", [])
    late = await check(chain_client, network, tx_hash, pay_to)
    assert late.ok, late.message
    assert late.confirmations == 2


async def test_a_reverted_transaction_is_refused(
    devchain: DevChain, chain_client: ChainClient, network: Network, pay_to: str
) -> None:
    # A transfer beyond the sender's balance, sent with a fixed gas limit so anvil mines it.
    sender = Account.create().address
    await chain_client.rpc("anvil_setBalance", [sender, hex(10**18)])
    await chain_client.rpc("anvil_impersonateAccount", [sender])
    data = encode_call("transfer(address,uint256)", pay_to, PRICE)
    tx = {"from": sender, "to": chain_client.token_address, "data": data, "gas": hex(100_000)}
    tx_hash = await chain_client.rpc("eth_sendTransaction", [tx])
    assert (await wait_for_receipt(chain_client, tx_hash)).status == 0
    result = await check(chain_client, network, tx_hash, pay_to)
    assert result.reason == "reverted"


async def test_a_transaction_without_usdc_is_refused(
    devchain: DevChain, chain_client: ChainClient, network: Network, pay_to: str
) -> None:
    # Plain ETH to our address is not a USDC payment.
    tx = {"from": devchain.accounts[3].address, "to": pay_to, "value": hex(10**15)}
    tx_hash = await chain_client.rpc("eth_sendTransaction", [tx])
    await wait_for_receipt(chain_client, tx_hash)
    result = await check(chain_client, network, tx_hash, pay_to)
    assert result.reason == "not_usdc"


async def test_a_transaction_still_in_the_mempool_is_not_confirmed(
    devchain: DevChain, chain_client: ChainClient, network: Network, pay_to: str
) -> None:
    # Given a transfer sitting in the mempool (automine paused on the shared chain)
    await chain_client.rpc("evm_setAutomine", [False])
    try:
        sender = devchain.accounts[2].address
        data = encode_call("transfer(address,uint256)", pay_to, PRICE)
        tx = {"from": sender, "to": chain_client.token_address, "data": data}
        tx_hash = await chain_client.rpc("eth_sendTransaction", [tx])
        # When it is verified, then the client is told to retry
        result = await check(chain_client, network, tx_hash, pay_to)
        assert result.reason == "not_confirmed"
        assert result.retryable
        assert result.payer is None
    finally:
        await chain_client.rpc("evm_setAutomine", [True])
        await chain_client.rpc("evm_mine", [])
    assert (await check(chain_client, network, tx_hash, pay_to)).ok
